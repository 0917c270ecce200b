"""Funnel plots against every case in PHEindicatormethods' testFunnels.R (stats-methods §8).

Each data row of each ``funnel_*.csv`` is its own test, named ``row<n>`` with n the
1-based data row of the file (file line n + 1), so a failure points at the case.

Tolerances follow what each file stores (the values are the reference tool's output,
rounded before they were written):

- ``funnel_proportion_limits.csv`` keeps 6 decimals: absolute 5e-7 (half a unit in the
  6th decimal). ``..._axis_variation.csv`` keeps 8 decimals: absolute 5e-9.
- The ratio and rate files keep 10 significant digits and at most 9 decimals (e.g.
  ``111970.3773``, ``0.290369211``): half a unit in the last stored digit, see
  ``_stored_tolerance``. For values of 1 or more that is 5e-11 to 5e-10 relative, no
  looser than the spec's 1e-9, so a drift in the bisection or the axis would show.

Both get a relative slack of 1e-12 for float noise in our own sums. One ratio limit
(three cells: λ, count and isr) is a known exception (``_RATIO_BISECTION_EXCEPTION``).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pytest

from gapwatch.core.stats import funnel, funnel_limits
from tests.conformance.conftest import Rows, num, record

PhCsv = Callable[[str], Rows]

PROPORTION_ROWS = 303
RATIO_ROWS = 300
RATE_SIGNIFICANCE_ROWS = 40
ZERO_COUNT_ROW = 40
"""The one rate-significance row with count 0; "without_0" calls drop it, so its cells in
those columns are filler from the reference sheet, not a function output."""
TABLE_ROWS = funnel_limits.AXIS_POINTS
RATE_INPUT_ROWS = 50
FLOAT_SLACK = 1e-12

RATE_VARIANTS = [
    f"{kind}_per_{m}_{zeros}_0"
    for kind in ("dsr", "crude")
    for m in ("100000", "100")
    for zeros in ("with", "without")
]

_RATIO_BISECTION_EXCEPTION = (328, "upper_3s")
"""Observed_events = 328, the 3 sigma upper limit (exp_events, count and isr).

At the bisection's last step λ = 274.87001482405327, where P(K >= 328 | λ) - 0.001 =
+1.93e-10 (scipy and 50-digit mpmath agree), so the spec's rule steps down; the
reference stepped up, so the two answers are one final step apart (5.96e-8 in v,
1.3e-4 in λ), either side of the true root 274.8700139019116. Every other cell of the
four limit tables matches to the stored digits, so the bisection is the spec's; the
reference tool's tail probability was presumably less precise at this point. These
cells are compared at relative 1e-6 (on O/λ, i.e. count + 1, for the count column),
the accuracy the spec gives for a root finder."""

FILES = {
    "funnel_proportion_significance.csv": PROPORTION_ROWS,
    "funnel_proportion_limits.csv": TABLE_ROWS,
    "funnel_proportion_limits_axis_variation.csv": TABLE_ROWS,
    "funnel_ratio_significance.csv": RATIO_ROWS,
    "funnel_ratio_limits.csv": TABLE_ROWS,
    "funnel_rate_significance.csv": RATE_SIGNIFICANCE_ROWS,
    "funnel_rate_limits_inputs.csv": RATE_INPUT_ROWS,
    "funnel_rate_limits_dsr.csv": TABLE_ROWS,
    "funnel_rate_limits_crude_lt10.csv": TABLE_ROWS,
    "funnel_rate_limits_crude_zero.csv": TABLE_ROWS,
}


def _rows(count: int, skip: int | None = None) -> list[Any]:
    return [pytest.param(n, id=f"row{n}") for n in range(1, count + 1) if n != skip]


def _stored_tolerance(expected: float) -> float:
    """Half a unit in the last digit kept: 10 significant digits, at most 9 decimals."""
    if expected == 0:
        return 0.5e-9
    last_digit = 10.0 ** (math.floor(math.log10(abs(expected))) - 9)
    return 0.5 * max(last_digit, 1e-9)


def _check_columns(
    row: dict[str, str],
    got: dict[str, Any],
    tolerance: Callable[[str, float], float],
    where: str,
) -> None:
    """Compare each expected column: text exactly, numbers within ``tolerance``."""
    for column, value in got.items():
        cell = row[column]
        expected = num(cell) if isinstance(value, int | float) else cell
        if not isinstance(expected, float):
            assert value == expected, f"{where} {column}: got {value!r}, expected {expected!r}"
            continue
        assert value is not None, f"{where} {column}: expected {expected!r}, got missing"
        allowed = tolerance(column, expected) + FLOAT_SLACK * abs(expected)
        record("absolute", abs(value - expected))
        if expected:
            record("relative", abs(value - expected) / abs(expected))
        assert abs(value - expected) <= allowed, (
            f"{where} {column}: got {value!r}, expected {expected!r} "
            f"(difference {abs(value - expected):.3g}, allowed {allowed:.3g})"
        )


@pytest.mark.parametrize(("name", "count"), FILES.items())
def test_reference_file_has_the_rows_the_parametrisation_covers(
    ref: PhCsv, name: str, count: int
) -> None:
    assert len(ref(name)) == count


@pytest.fixture(scope="module")
def ref(phe_csv: PhCsv) -> PhCsv:
    """``phe_csv``, reading each file once for the module's ~1,700 tests."""
    return functools.cache(phe_csv)


# --- significance ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def proportion_labels(ref: PhCsv) -> tuple[Rows, list[funnel.Significance]]:
    rows = ref("funnel_proportion_significance.csv")
    labels = funnel.proportion_significances(
        [float(r["numerator"]) for r in rows], [float(r["denominator"]) for r in rows]
    )
    return rows, labels


@pytest.mark.parametrize("row", _rows(PROPORTION_ROWS))
def test_proportion_significance_matches_phe(
    proportion_labels: tuple[Rows, list[funnel.Significance]], row: int
) -> None:
    rows, labels = proportion_labels
    case = rows[row - 1]
    record("label wrong", float(labels[row - 1] != case["significance"]))
    assert labels[row - 1] == case["significance"], f"row {row}: {case}"


@pytest.fixture(scope="module")
def ratio_labels(ref: PhCsv) -> tuple[Rows, list[funnel.Significance]]:
    rows = ref("funnel_ratio_significance.csv")
    labels = funnel.ratio_significances(
        [float(r["obs"]) for r in rows], [float(r["expected"]) for r in rows]
    )
    return rows, labels


@pytest.mark.parametrize("row", _rows(RATIO_ROWS))
def test_ratio_significance_matches_phe(
    ratio_labels: tuple[Rows, list[funnel.Significance]], row: int
) -> None:
    rows, labels = ratio_labels
    case = rows[row - 1]
    record("label wrong", float(labels[row - 1] != case["significance"]))
    assert labels[row - 1] == case["significance"], f"row {row}: {case}"


@pytest.fixture(scope="module")
def rate_labels(ref: PhCsv) -> dict[str, dict[int, funnel.Significance]]:
    """Per variant, file row number -> label from one call over that variant's rows.

    "without_0" drops the count-0 row before the call, which moves a crude average
    (its population no longer counts); crude calls pass ``pop`` as the denominator.
    """
    rows = ref("funnel_rate_significance.csv")
    zero_rows = [n for n, r in enumerate(rows, start=1) if float(r["count"]) == 0]
    assert zero_rows == [ZERO_COUNT_ROW]
    result = {}
    for variant in RATE_VARIANTS:
        kind, _, multiplier, zeros, _ = variant.split("_")
        numbers = [n for n in range(1, len(rows) + 1) if zeros == "with" or n != ZERO_COUNT_ROW]
        chosen = [rows[n - 1] for n in numbers]
        column = "rate_dsr" if kind == "dsr" else f"rate_crude_per_{multiplier}"
        labels = funnel.rate_significances(
            [float(r["count"]) for r in chosen],
            [num(r[column]) for r in chosen],
            "dsr" if kind == "dsr" else "crude",
            float(multiplier),
            None if kind == "dsr" else [float(r["pop"]) for r in chosen],
        )
        result[variant] = dict(zip(numbers, labels, strict=True))
    return result


@pytest.mark.parametrize(
    ("variant", "row"),
    [
        pytest.param(variant, n, id=f"{variant}-row{n}")
        for variant in RATE_VARIANTS
        for n in range(1, RATE_SIGNIFICANCE_ROWS + 1)
        if not (variant.endswith("without_0") and n == ZERO_COUNT_ROW)
    ],
)
def test_rate_significance_matches_phe(
    ref: PhCsv, rate_labels: dict[str, dict[int, funnel.Significance]], variant: str, row: int
) -> None:
    case = ref("funnel_rate_significance.csv")[row - 1]
    record("label wrong", float(rate_labels[variant][row] != case[variant]))
    assert rate_labels[variant][row] == case[variant], f"{variant} row {row}: {case}"


# --- proportion limit tables ----------------------------------------------------------


def _proportion_table(ref: PhCsv, below: float) -> list[funnel_limits.ProportionFunnelRow]:
    rows = [r for r in ref("funnel_proportion_significance.csv") if float(r["denominator"]) < below]
    return funnel_limits.proportion_funnel_limits(
        [float(r["numerator"]) for r in rows], [float(r["denominator"]) for r in rows], 100
    )


@pytest.fixture(scope="module")
def proportion_tables(ref: PhCsv) -> dict[str, list[funnel_limits.ProportionFunnelRow]]:
    return {
        "funnel_proportion_limits.csv": _proportion_table(ref, math.inf),
        "funnel_proportion_limits_axis_variation.csv": _proportion_table(ref, 31000),
    }


PROPORTION_DECIMALS = {
    "funnel_proportion_limits.csv": 6,
    "funnel_proportion_limits_axis_variation.csv": 8,
}


@pytest.mark.parametrize("name", PROPORTION_DECIMALS)
@pytest.mark.parametrize("row", _rows(TABLE_ROWS))
def test_proportion_funnel_limits_match_phe(
    ref: PhCsv,
    proportion_tables: dict[str, list[funnel_limits.ProportionFunnelRow]],
    name: str,
    row: int,
) -> None:
    case = ref(name)[row - 1]
    got = proportion_tables[name][row - 1]
    columns: dict[str, Any] = {
        "Population": got.population,
        "lower_2s_limit": got.lower_2s_limit,
        "upper_2s_limit": got.upper_2s_limit,
        "lower_3s_limit": got.lower_3s_limit,
        "upper_3s_limit": got.upper_3s_limit,
        "baseline": got.baseline,
    }
    if "statistic" in case:
        columns |= {"statistic": got.statistic, "method": got.method}
    half_unit = 0.5 * 10.0 ** -PROPORTION_DECIMALS[name]
    _check_columns(case, columns, lambda _c, _e: half_unit, f"{name} row {row}")


# --- ratio limit table ----------------------------------------------------------------


@dataclass(frozen=True)
class RatioTables:
    count: list[funnel_limits.RatioFunnelRow]
    isr: list[funnel_limits.RatioFunnelRow]


@pytest.fixture(scope="module")
def ratio_tables(ref: PhCsv) -> RatioTables:
    rows = ref("funnel_ratio_significance.csv")
    observed = [float(r["obs"]) for r in rows]
    expected = [float(r["expected"]) for r in rows]
    return RatioTables(
        funnel_limits.ratio_funnel_limits(observed, expected, "count"),
        funnel_limits.ratio_funnel_limits(observed, expected, "isr"),
    )


@pytest.mark.parametrize("row", _rows(TABLE_ROWS))
def test_ratio_funnel_limits_match_phe(ref: PhCsv, ratio_tables: RatioTables, row: int) -> None:
    case = ref("funnel_ratio_limits.csv")[row - 1]
    count, isr = ratio_tables.count[row - 1], ratio_tables.isr[row - 1]
    columns: dict[str, Any] = {"Observed_events": count.observed_events}
    for band in ("lower_2s", "upper_2s", "lower_3s", "upper_3s"):
        assert getattr(count, f"{band}_exp_events") == getattr(isr, f"{band}_exp_events")
        columns[f"{band}_exp_events"] = getattr(count, f"{band}_exp_events")
        columns[f"{band}_count"] = getattr(count, f"{band}_limit")
        columns[f"{band}_isr"] = getattr(isr, f"{band}_limit")

    def tolerance(column: str, expected: float) -> float:
        band = column.rsplit("_", 1)[0].removesuffix("_exp")
        if (count.observed_events, band) == _RATIO_BISECTION_EXCEPTION:
            ratio = expected + 1 if column.endswith("_count") else expected  # count is O/λ - 1
            return 1e-6 * abs(ratio)
        return _stored_tolerance(expected)

    _check_columns(case, columns, tolerance, f"funnel_ratio_limits.csv row {row}")


# --- rate limit tables and funnel points ----------------------------------------------


def _rate_inputs(ref: PhCsv) -> tuple[list[float], list[float], list[float]]:
    rows = ref("funnel_rate_limits_inputs.csv")
    return (
        [float(r["ev"]) for r in rows],
        [float(r["rate"]) for r in rows],
        [float(r["pop"]) for r in rows],
    )


def _with_largest(values: Sequence[float], key: Sequence[float], new: float) -> list[float]:
    """``values`` with the entry at the largest ``key`` replaced (the tests' edits)."""
    changed = list(values)
    changed[key.index(max(key))] = new
    return changed


@pytest.fixture(scope="module")
def rate_tables(ref: PhCsv) -> dict[str, list[funnel_limits.RateFunnelRow]]:
    """The three calls, with the input edits README.md describes for each file."""
    ev, rate, _ = _rate_inputs(ref)
    pop = [1e5 * e / r for e, r in zip(ev, rate, strict=True)]
    keep = [i for i, p in enumerate(pop) if p > max(pop) / 2]
    zero_ev, zero_rate = _with_largest(ev, ev, 0), _with_largest(rate, ev, 0)
    return {
        "funnel_rate_limits_dsr.csv": funnel_limits.rate_funnel_limits(ev, rate, "dsr", 1e5, 3),
        "funnel_rate_limits_crude_lt10.csv": funnel_limits.rate_funnel_limits(
            _with_largest(ev, ev, 5), rate, "crude", 1e5, 3
        ),
        "funnel_rate_limits_crude_zero.csv": funnel_limits.rate_funnel_limits(
            [zero_ev[i] for i in keep],
            [zero_rate[i] for i in keep],
            "crude",
            1e5,
            3,
            denominators=[pop[i] for i in keep],
        ),
    }


@pytest.mark.parametrize(
    "name",
    [
        "funnel_rate_limits_dsr.csv",
        "funnel_rate_limits_crude_lt10.csv",
        "funnel_rate_limits_crude_zero.csv",
    ],
)
@pytest.mark.parametrize("row", _rows(TABLE_ROWS))
def test_rate_funnel_limits_match_phe(
    ref: PhCsv, rate_tables: dict[str, list[funnel_limits.RateFunnelRow]], name: str, row: int
) -> None:
    case = ref(name)[row - 1]
    got = rate_tables[name][row - 1]
    columns: dict[str, Any] = {"Events": got.events}
    for band in ("lower_2s", "upper_2s", "lower_3s", "upper_3s"):
        columns[f"{band}_population_1_year"] = getattr(got, f"{band}_population_1_year")
        columns[f"{band}_limit"] = getattr(got, f"{band}_limit")
    columns |= {"baseline": got.baseline, "statistic": got.statistic, "method": got.method}
    _check_columns(case, columns, lambda _c, e: _stored_tolerance(e), f"{name} row {row}")


@pytest.fixture(scope="module")
def rate_points(ref: PhCsv) -> dict[str, list[funnel_limits.FunnelPoint]]:
    """``calculate_funnel_points`` as the file's three column pairs imply.

    The file does not say how each was called; the values pin it down:
    - dsr (``rate_chart``): the largest-ev row is blank although ev = 988, so that row
      had fewer than 10 events; we set it to 5 as the dsr/lt10 limit test does (any
      count under 10 gives the same blanks, and other rows do not depend on it).
    - crude (``*_crude``): the plain inputs, 3 years (1e5·988/167/3 = 197205.5888).
    - crude with denominator (``*_crude_with_denom``): every value is (1e5·ev/rate)/5,
      so 5 years of data; the largest-ev row is pop/5 = 6883/5 = 1376.6, which only a
      count of 0 with ``denominator = pop`` gives.
    """
    ev, rate, pop = _rate_inputs(ref)
    return {
        "": funnel_limits.funnel_points(_with_largest(ev, ev, 5), rate, "dsr", 1e5, 3),
        "_crude": funnel_limits.funnel_points(ev, rate, "crude", 1e5, 3),
        "_crude_with_denom": funnel_limits.funnel_points(
            _with_largest(ev, ev, 0), rate, "crude", 1e5, 5, denominators=pop
        ),
    }


@pytest.mark.parametrize("suffix", ["", "_crude", "_crude_with_denom"])
@pytest.mark.parametrize("row", _rows(RATE_INPUT_ROWS))
def test_funnel_points_match_phe(
    ref: PhCsv, rate_points: dict[str, list[funnel_limits.FunnelPoint]], suffix: str, row: int
) -> None:
    case = ref("funnel_rate_limits_inputs.csv")[row - 1]
    got = rate_points[suffix][row - 1]
    where = f"funnel_rate_limits_inputs.csv row {row}"
    for column, value in (
        (f"rate_chart{suffix}", got.rate_chart),
        (f"denominator_derived{suffix}", got.denominator_derived),
    ):
        expected = num(case[column])
        if expected is None:
            assert value is None, f"{where} {column}: expected missing, got {value!r}"
        else:
            _check_columns(case, {column: value}, lambda _c, e: _stored_tolerance(e), where)
