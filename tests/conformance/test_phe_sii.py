"""phe_sii conformance: every row of sii_expected.csv and sii_error_cases.csv.

Point estimates are closed form and must match to 1e-9 relative. The limits are Monte
Carlo (PHE's from its Excel tool, ours from a seeded PCG64 stream), so at 100,000
repetitions each must lie within 2% of the expected CI width (stats-methods §7.7), and
each limit column must also pass the R package's own rule: mean |got - exp| / mean |exp|
below 5%.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from gapwatch.core.errors import StatisticsError
from gapwatch.core.stats.sii import GroupedSii, SiiInput, SiiResult, sii, sii_by_group
from tests.conformance.conftest import Rows, _source, assert_close, num, record

REPETITIONS = 100_000
WIDTH_FRACTION = 0.02
"""§7.7: at 100,000 repetitions every limit within 2% of the expected CI width."""
COLUMN_MEAN_RELATIVE = 0.05
"""testSII.R's check: per column, mean |got - exp| / mean |exp| < 0.05."""
LIMITS = ("sii_lower", "sii_upper", "rii_lower", "rii_upper")

Row = dict[str, str]
Key = tuple[str, ...]


def _ids(name: str, column: str) -> list[str]:
    """Case ids read at collection time so each case is its own test; without the
    reference data one placeholder runs, and the phe_csv fixture skips (or fails in CI)."""
    path = _source() / name
    if not path.is_file():
        return ["no-reference-data"]
    with path.open(newline="", encoding="utf-8") as handle:
        return [row[column] for row in csv.DictReader(handle)]


CASE_IDS = _ids("sii_expected.csv", "case_id")
ERROR_IDS = [f"error{i + 1:02d}" for i in range(len(_ids("sii_error_cases.csv", "kind")))]


@pytest.fixture(scope="module")
def records(phe_csv: Callable[[str], Rows]) -> dict[int, Row]:
    return {int(row["record_no"]): row for row in phe_csv("sii_inputs.csv")}


@pytest.fixture(scope="module")
def cases(phe_csv: Callable[[str], Rows]) -> dict[str, Row]:
    return {row["case_id"]: row for row in phe_csv("sii_expected.csv")}


def _select(records: dict[int, Row], spec: str) -> list[Row]:
    """Records named by "1-20" or "1-15;17-20"."""
    chosen: list[Row] = []
    for part in spec.split(";"):
        first, _, last = part.partition("-")
        chosen += [records[n] for n in range(int(first), int(last or first) + 1)]
    return chosen


def _input(record: Row, value: str = "value", uncertainty: str = "se") -> SiiInput:
    """One record as an SiiInput: ``value`` or ``x`` (count, proportions), ``se`` or ``cl``."""
    q = int(record["quantile"])
    pop = num(record["population"])
    se = num(record["standard_error"]) if uncertainty == "se" else None
    lower = num(record["lower_cl"]) if uncertainty == "cl" else None
    upper = num(record["upper_cl"]) if uncertainty == "cl" else None
    if value == "x":
        assert pop is not None
        return SiiInput.from_count(q, pop, num(record["count"]), se=se, lower=lower, upper=upper)
    return SiiInput(q, pop, num(record["value"]), se=se, lower=lower, upper=upper)


def _group(rows: list[Row], **how: str) -> dict[Key, list[SiiInput]]:
    """Grouped as testSII.R groups them: by area, grouping1 and grouping2."""
    groups: dict[Key, list[SiiInput]] = {}
    for entry in rows:
        key = (entry["area"], entry["grouping1"], entry["grouping2"])
        groups.setdefault(key, []).append(_input(entry, **how))
    return groups


def _levels(case: Row) -> tuple[float, ...]:
    return tuple(float(x) for x in case["arg_confidence"].split(";"))


def _run(case: Row, records: dict[int, Row]) -> SiiResult:
    """The call the case's arg_* columns describe, and the result for the case's area."""
    rows = _select(records, case["input_records"])
    how = {"value": case["arg_value"], "uncertainty": case["arg_uncertainty"]}
    kwargs: dict[str, Any] = {
        "value_type": int(case["arg_value_type"]),
        "transform": case["arg_transform"] == "True",
        "multiplier": float(case["arg_multiplier"]),
        "levels": _levels(case),
        "rii": case["arg_rii"] == "True",
        "repetitions": REPETITIONS,
    }
    if not case["grouped_by"]:
        return sii([_input(record, **how) for record in rows], **kwargs)
    assert case["grouped_by"] == "area;grouping1;grouping2"
    grouped = sii_by_group(_group(rows, **how), **kwargs)
    assert grouped.dropped == ()
    (key,) = [key for key in grouped.results if key[0] == case["area"]]
    return grouped.results[key]


@pytest.fixture(scope="module")
def results(records: dict[int, Row], cases: dict[str, Row]) -> Callable[[str], SiiResult]:
    """Each case simulated once, shared by the per-case and the per-column tests."""
    done: dict[str, SiiResult] = {}

    def result(case_id: str) -> SiiResult:
        if case_id not in done:
            done[case_id] = _run(cases[case_id], records)
        return done[case_id]

    return result


def _limit_pairs(case: Row, result: SiiResult) -> Iterator[tuple[str, float | None, float, float]]:
    """(column, got, expected, expected CI width) for every expected limit the call yields."""
    for index, level in enumerate(_levels(case), start=1):
        limits = result.at(level)
        for stat in ("sii", "rii"):
            if stat == "rii" and case["arg_rii"] != "True":
                continue
            lower = num(case[f"{stat}_lower_{index}"])
            upper = num(case[f"{stat}_upper_{index}"])
            if lower is None or upper is None:
                continue
            interval = limits.sii if stat == "sii" else limits.rii
            assert interval is not None
            width = abs(upper - lower)
            yield f"{stat}_lower_{index}", interval.lower, lower, width
            yield f"{stat}_upper_{index}", interval.upper, upper, width


@pytest.mark.parametrize("case_id", CASE_IDS)
def test_point_estimates_match_phe(
    case_id: str, cases: dict[str, Row], results: Callable[[str], SiiResult]
) -> None:
    case = cases[case_id]
    result = results(case_id)
    assert_close(result.sii, num(case["sii"]), what=f"{case_id} sii")
    if case["arg_rii"] == "True" and num(case["rii"]) is not None:
        assert_close(result.rii, num(case["rii"]), what=f"{case_id} rii")
    if case["arg_intercept"] == "True":
        assert_close(result.intercept, num(case["intercept"]), what=f"{case_id} intercept")


@pytest.mark.parametrize("case_id", CASE_IDS)
def test_limits_are_within_two_percent_of_the_ci_width(
    case_id: str, cases: dict[str, Row], results: Callable[[str], SiiResult]
) -> None:
    case = cases[case_id]
    result = results(case_id)
    pairs = list(_limit_pairs(case, result))
    if not pairs:  # the quintile cases publish no limits: check they are at least sane
        for limits in result.limits:
            assert limits.sii.lower is not None and limits.sii.upper is not None
            assert limits.sii.lower <= result.sii <= limits.sii.upper
    for column, got, expected, width in pairs:
        if got is not None and width:
            record("of CI width", abs(got - expected) / width)
        assert got is not None, f"{case_id} {column}: missing"
        assert abs(got - expected) <= WIDTH_FRACTION * width, (
            f"{case_id} {column}: got {got!r}, expected {expected!r}, "
            f"{abs(got - expected) / width:.2%} of the width {width:.4g}"
        )


def test_limit_columns_pass_the_r_package_mean_relative_rule(
    cases: dict[str, Row], results: Callable[[str], SiiResult]
) -> None:
    by_column: dict[str, list[tuple[float, float]]] = {}
    for case_id, case in cases.items():
        for column, got, expected, _ in _limit_pairs(case, results(case_id)):
            assert got is not None
            by_column.setdefault(column, []).append((got, expected))
    assert set(by_column) == {f"{c}_{i}" for c in LIMITS for i in (1, 2)}
    for column, pairs in by_column.items():
        mean_diff = sum(abs(g - e) for g, e in pairs) / len(pairs)
        mean_exp = sum(abs(e) for _, e in pairs) / len(pairs)
        assert mean_diff / mean_exp < COLUMN_MEAN_RELATIVE, column


# --- error and warning cases --------------------------------------------------------

Check = Callable[[list[Row]], None]


def _raises(match: str, build: Callable[[list[Row]], object]) -> Check:
    def check(rows: list[Row]) -> None:
        with pytest.raises(StatisticsError, match=match):
            build(rows)

    return check


def _grouped(rows: list[Row], value: str = "value", uncertainty: str = "se", **kw: Any) -> Any:
    kw.setdefault("repetitions", 1000)
    return sii_by_group(_group(rows, value=value, uncertainty=uncertainty), **kw)


def _text_population(rows: list[Row]) -> None:
    bad = [SiiInput(int(r["quantile"]), r["grouping1"], num(r["value"])) for r in rows]  # type: ignore[arg-type]  # the point: a text column
    sii_by_group({("area1",): bad}, repetitions=1000)


def _every_bad_confidence(rows: list[Row]) -> None:
    for level in (0.35, 40, 135):
        with pytest.raises(StatisticsError, match="confidence level"):
            _grouped(rows, levels=level)


def _drops_incomplete_group(rows: list[Row]) -> None:
    grouped: GroupedSii[Key] = _grouped(rows, uncertainty="cl")
    assert grouped.dropped == (("area2", "group A", "group C"),)
    assert list(grouped.results) == [("area1", "group A", "group C")]
    assert any("removed due to incomplete or invalid data" in w for w in grouped.warnings)


def _warns_many_quantiles(rows: list[Row]) -> None:
    grouped: GroupedSii[Key] = _grouped(rows, uncertainty="cl")
    (result,) = grouped.results.values()
    assert any("unstable" in w for w in result.warnings)


# (input_records, arguments) -> what the call must do; every CSV row must be listed here.
ERROR_CHECKS: dict[tuple[str, str], Check] = {
    ("151-160", "population = grouping1 (a text column)"): _raises(
        "population must be a number", _text_population
    ),
    ("151-160", "value, se"): _raises("population must be > 0", _grouped),
    ("161-165", "value, se"): _raises("standard error must be >= 0", _grouped),
    ("191-200", "value, se"): _raises("standard error must be >= 0", _grouped),
    ("166-170", "x = count, value_type = 2, se"): _raises(
        "count x must be > 0", lambda rows: _grouped(rows, value="x", value_type=2)
    ),
    ("1-20", "value, value_type = 2, se"): _raises(
        r"proportion value .* not in \[0, 1\]", lambda rows: _grouped(rows, value_type=2)
    ),
    ("171-175", "value, value_type = 2, lower_cl/upper_cl"): _raises(
        r"proportion upper limit .* not in \[0, 1\]",
        lambda rows: _grouped(rows, uncertainty="cl", value_type=2),
    ),
    ("176-180", "value, value_type = 2, lower_cl/upper_cl"): _raises(
        r"proportion lower limit .* not in \[0, 1\]",
        lambda rows: _grouped(rows, uncertainty="cl", value_type=2),
    ),
    ("1-3", "value, lower_cl/upper_cl"): _raises(
        "number of quantiles must be between 5 and 100",
        lambda rows: _grouped(rows, uncertainty="cl"),
    ),
    ("191-200", "value, lower_cl/upper_cl"): _raises(
        "confidence limit is missing", lambda rows: _grouped(rows, uncertainty="cl")
    ),
    ("1-20", "value, lower_cl/upper_cl, transform = TRUE, value_type = 0"): _raises(
        "transform needs value_type",
        lambda rows: _grouped(rows, uncertainty="cl", transform=True, value_type=0),
    ),
    ("1-20", "value, se, transform = TRUE, value_type = 1"): _raises(
        "transform needs 95% confidence limits, not standard errors",
        lambda rows: _grouped(rows, transform=True, value_type=1),
    ),
    ("1-20", "value, se, repetitions = 0"): _raises(
        "repetitions must be 1000 or more", lambda rows: _grouped(rows, repetitions=0)
    ),
    ("1-20", "value, se, confidence = 0.35 (also 40, 135)"): _every_bad_confidence,
    (
        "1-15;17-20",
        "value, lower_cl/upper_cl (area2 lacks quantile 6, so area2 is dropped)",
    ): _drops_incomplete_group,
    ("211-225", "value, lower_cl/upper_cl (15 quantiles)"): _warns_many_quantiles,
}


@pytest.mark.parametrize("error_id", ERROR_IDS)
def test_error_and_warning_cases(
    error_id: str, phe_csv: Callable[[str], Rows], records: dict[int, Row]
) -> None:
    case = phe_csv("sii_error_cases.csv")[int(error_id.removeprefix("error")) - 1]
    check = ERROR_CHECKS.get((case["input_records"], case["arguments"]))
    assert check is not None, f"no call mapped for {case}"
    check(_select(records, case["input_records"]))
