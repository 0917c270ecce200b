"""phe_proportion, phe_rate and phe_mean against PHE's reference cases.

Each call asks for 95% and 99.8% together, as the R tests do; the grouped files sum
numerators and denominators within an area first, where one missing input makes the
group's sum (and so its result) missing.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from gapwatch.core.stats.confidence import Estimate, level_label
from gapwatch.core.stats.mean import mean
from gapwatch.core.stats.proportion import proportion
from gapwatch.core.stats.rate import crude_rate
from tests.conformance.conftest import Rows, assert_close, num

BOTH = (0.95, 0.998)
PROPORTION_CASES = [f"prop{i:02d}" for i in range(1, 20)]
RATE_CASES = [f"rate{i:02d}" for i in range(1, 21)]
PROPORTION_AREAS = [f"Area{i}" for i in range(1, 9)] + ["Area09", "Area10", "Area11"]
RATE_AREAS = [*PROPORTION_AREAS, "Area12"]
MEAN_GROUPS = ["Area1", "Area2", "ALL"]


def assert_matches(got: Estimate, row: dict[str, str], levels: tuple[float, ...]) -> None:
    """Value, limits at each level (PHE's column names), statistic and method."""
    assert_close(got.value, num(row["value"]), what="value")
    for level in levels:
        interval, label = got.at(level), level_label(level)
        assert_close(interval.lower, num(row[f"lower{label}cl"]), what=f"lower{label}cl")
        assert_close(interval.upper, num(row[f"upper{label}cl"]), what=f"upper{label}cl")
    assert got.statistic == row["statistic"]
    assert got.method == row["method"]


def sum_or_missing(cells: list[str]) -> float | None:
    """R's sum() without na.rm: any missing cell makes the sum missing."""
    values = [num(cell) for cell in cells]
    return None if None in values else sum(v for v in values if v is not None)


def case(rows: Rows, key: str, wanted: str) -> dict[str, str]:
    (row,) = [r for r in rows if r[key] == wanted]
    return row


@pytest.mark.parametrize(
    ("file", "key", "expected"),
    [
        ("proportion.csv", "case_id", PROPORTION_CASES),
        ("proportion_grouped.csv", "area", PROPORTION_AREAS),
        ("rate.csv", "case_id", RATE_CASES),
        ("rate_grouped.csv", "area", RATE_AREAS),
        ("mean_expected.csv", "group", MEAN_GROUPS),
    ],
)
def test_every_case_in_the_file_is_run(
    phe_csv: Callable[[str], Rows], file: str, key: str, expected: list[str]
) -> None:
    assert [row[key] for row in phe_csv(file)] == expected


@pytest.mark.parametrize("case_id", PROPORTION_CASES)
def test_proportion_matches_the_reference(phe_csv: Callable[[str], Rows], case_id: str) -> None:
    row = case(phe_csv("proportion.csv"), "case_id", case_id)
    got = proportion(num(row["numerator"]), num(row["denominator"]), BOTH, float(row["multiplier"]))
    assert_matches(got, row, BOTH)


@pytest.mark.parametrize("area", PROPORTION_AREAS)
def test_grouped_proportion_matches_the_reference(
    phe_csv: Callable[[str], Rows], area: str
) -> None:
    expected = case(phe_csv("proportion_grouped.csv"), "area", area)
    inputs = [r for r in phe_csv("proportion.csv") if r["area"] == area]
    x = sum_or_missing([r["numerator"] for r in inputs])
    n = sum_or_missing([r["denominator"] for r in inputs])
    assert (x, n) == (num(expected["numerator_sum"]), num(expected["denominator_sum"]))
    got = proportion(x, n, (0.95,), float(expected["multiplier"]))
    assert_matches(got, expected, (0.95,))


@pytest.mark.parametrize("case_id", RATE_CASES)
def test_rate_matches_the_reference(phe_csv: Callable[[str], Rows], case_id: str) -> None:
    row = case(phe_csv("rate.csv"), "case_id", case_id)
    got = crude_rate(num(row["numerator"]), num(row["denominator"]), BOTH, float(row["multiplier"]))
    assert_matches(got, row, BOTH)


@pytest.mark.parametrize("area", RATE_AREAS)
def test_grouped_rate_matches_the_reference(phe_csv: Callable[[str], Rows], area: str) -> None:
    expected = case(phe_csv("rate_grouped.csv"), "area", area)
    inputs = [r for r in phe_csv("rate.csv") if r["area"] == area]
    x = sum_or_missing([r["numerator"] for r in inputs])
    n = sum_or_missing([r["denominator"] for r in inputs])
    assert (x, n) == (num(expected["numerator_sum"]), num(expected["denominator_sum"]))
    got = crude_rate(x, n, (0.95,), float(expected["multiplier"]))
    assert_matches(got, expected, (0.95,))


@pytest.mark.parametrize("group", MEAN_GROUPS)
def test_mean_matches_the_reference(phe_csv: Callable[[str], Rows], group: str) -> None:
    expected = case(phe_csv("mean_expected.csv"), "group", group)
    inputs = [r for r in phe_csv("mean_inputs.csv") if group in ("ALL", r["area"])]
    got = mean([num(r["value"]) for r in inputs], BOTH)
    assert_close(got.value_sum, num(expected["value_sum"]), what="value_sum")
    assert got.value_count == int(expected["value_count"])
    assert_close(got.stdev, num(expected["stdev"]), what="stdev")
    assert_matches(got.estimate, expected, BOTH)
