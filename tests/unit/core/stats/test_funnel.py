"""Hand-made checks of the funnel-plot maths (the PHE cases are in tests/conformance)."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
from scipy.optimize import brentq
from scipy.stats import norm, poisson

from gapwatch.core.errors import StatisticsError
from gapwatch.core.stats import funnel, funnel_limits

# --- limit tables ---------------------------------------------------------------------


def test_proportion_limits_sit_either_side_of_the_baseline_by_the_same_amount() -> None:
    rows = funnel_limits.proportion_funnel_limits([300, 500], [1000, 1500], multiplier=100)
    for row in rows:
        assert row.baseline == pytest.approx(800 / 2500 * 100)
        assert row.upper_2s_limit - row.baseline == pytest.approx(row.baseline - row.lower_2s_limit)
        assert row.upper_3s_limit - row.baseline == pytest.approx(row.baseline - row.lower_3s_limit)


def test_proportion_bound_is_the_normal_approximation_around_the_average() -> None:
    mean_p, n = 0.3, 400
    half_width = norm.ppf(0.975) * math.sqrt(mean_p * (1 - mean_p) / n)
    assert funnel.proportion_funnel_bound(mean_p, n, 0.025, "low") == pytest.approx(
        mean_p - half_width, rel=1e-12
    )
    assert funnel.proportion_funnel_bound(mean_p, n, 0.025, "high") == pytest.approx(
        mean_p + half_width, rel=1e-12
    )


def _widths(rows: list[funnel_limits.ProportionFunnelRow]) -> list[float]:
    return [row.upper_2s_limit - row.lower_2s_limit for row in rows]


def test_proportion_funnel_narrows_as_the_population_grows() -> None:
    rows = funnel_limits.proportion_funnel_limits([3000, 5000], [10000, 12000])
    widths = _widths(rows)
    assert all(later < earlier for earlier, later in zip(widths, widths[1:], strict=False))


def test_the_3_sigma_band_contains_the_2_sigma_band_for_every_kind() -> None:
    proportions = funnel_limits.proportion_funnel_limits([30, 500], [100, 1500])
    ratios = funnel_limits.ratio_funnel_limits([12, 80], [10.0, 95.0], "isr")
    rates = funnel_limits.rate_funnel_limits([40, 300], [120.0, 95.0], "crude", 1e5, 1)
    rows: list[
        funnel_limits.ProportionFunnelRow
        | funnel_limits.RatioFunnelRow
        | funnel_limits.RateFunnelRow
    ]
    rows = [*proportions, *ratios, *rates]
    for row in rows:
        assert row.lower_3s_limit <= row.lower_2s_limit < row.upper_2s_limit
        assert row.upper_2s_limit <= row.upper_3s_limit


def test_rate_funnel_narrows_and_brackets_the_average_rate() -> None:
    rows = funnel_limits.rate_funnel_limits([40, 300, 1200], [120.0, 95.0, 101.0], "dsr", 1e5, 3)
    for row in rows:
        assert row.lower_2s_limit < row.baseline < row.upper_2s_limit
    widths = [row.upper_2s_limit - row.lower_2s_limit for row in rows]
    assert all(later < earlier for earlier, later in zip(widths, widths[1:], strict=False))


def test_ratio_limits_are_one_minus_or_times_100_of_the_same_ratio() -> None:
    counts = funnel_limits.ratio_funnel_limits([12, 80], [10.0, 95.0], "count")
    isrs = funnel_limits.ratio_funnel_limits([12, 80], [10.0, 95.0], "isr")
    for count, isr in zip(counts, isrs, strict=True):
        assert (count.baseline, isr.baseline) == (0.0, 100.0)
        assert count.lower_2s_limit + 1 == pytest.approx(isr.lower_2s_limit / 100)
        assert count.observed_events / count.lower_2s_exp_events == pytest.approx(
            count.lower_2s_limit + 1
        )


def test_axis_runs_from_the_rounded_smallest_to_the_rounded_largest_unit() -> None:
    # 0.95 x 2345 = 2227.75 -> 2000; 1.05 x 3000 = 3150 -> 3200 (two leading digits).
    rows = funnel_limits.proportion_funnel_limits([1000, 1500], [2345, 3000])
    assert len(rows) == funnel_limits.AXIS_POINTS
    assert (rows[0].population, rows[-1].population) == (2000, 3200)
    populations = [row.population for row in rows]
    assert populations == sorted(set(populations))


def test_axis_starts_at_1_when_the_units_span_more_than_a_factor_of_2() -> None:
    rows = funnel_limits.proportion_funnel_limits([10, 900], [100, 1000])
    assert rows[0].population == 1
    assert rows[0].lower_3s_limit == 0.0  # clamped at 0 where the bound goes negative


# --- Poisson funnel bisection ---------------------------------------------------------


@pytest.mark.parametrize("events", [1, 2, 9, 10, 57, 328, 2500])
@pytest.mark.parametrize("tail", [0.025, 0.001])
def test_bisection_lands_within_1e6_of_the_exact_poisson_root(events: int, tail: float) -> None:
    """The bisection stops at a step of 6e-8 in v = λ/(1 + O + λ), so λ is within 1e-6
    relative where λ is not tiny, and within 1e-6 absolute where it is (O = 1, low side:
    λ = 0.025 sits at v = 0.012, where 6e-8 in v is 5e-6 relative)."""

    def low(lam: float) -> float:
        return float(poisson.sf(events - 1, lam)) - tail

    def high(lam: float) -> float:
        return float(poisson.cdf(events, lam)) - tail

    top = 10.0 * events + 20
    sides: tuple[tuple[funnel.Side, Callable[[float], float]], ...] = (("low", low), ("high", high))
    for side, equation in sides:
        root = brentq(equation, 1e-12, top, xtol=1e-14, rtol=1e-15)
        got = funnel_limits.poisson_funnel_expected(events, tail, side)
        assert got == pytest.approx(root, rel=1e-6, abs=1e-6), side
        v_got, v_root = got / (1 + events + got), root / (1 + events + root)
        assert abs(v_got - v_root) <= 1.2e-7, side  # the last two steps: 2 x 5.96e-8


def test_bisection_gives_the_textbook_value_for_one_event() -> None:
    # P(K >= 1 | lam) = 0.025 has lam = -ln(0.975); PHE's own table shows 0.025317898,
    # 3.6e-6 above it, because a small λ sits where the step in v is coarse.
    got = funnel_limits.poisson_funnel_expected(1, 0.025, "low")
    assert got == pytest.approx(-math.log(0.975), rel=5e-6)
    assert round(got, 9) == 0.025317898


# --- significance ---------------------------------------------------------------------


def test_units_exactly_at_the_benchmark_are_not_significant() -> None:
    assert funnel.proportion_significance(25, 100, 0.25) == "Not significant"
    assert funnel.ratio_significance(40, 40.0) == "Not significant"
    assert funnel.rate_significance(50, 50_000.0, 50 / 50_000) == "Not significant"
    assert funnel.rate_significance(50, 50_000.0, 0.001, rate_type="dsr") == "Not significant"


@pytest.mark.parametrize(
    ("x", "expected"),
    [(5000, "Not significant"), (5150, "High (0.025)"), (5400, "High (0.001)"),
     (4850, "Low (0.025)"), (4600, "Low (0.001)")],
)  # fmt: skip
def test_proportion_labels_grow_with_the_distance_from_the_benchmark(x: int, expected: str) -> None:
    # n = 10000 at p = 0.5: the 2 sigma half-width is 98, the 3 sigma one 155.
    assert funnel.proportion_significance(x, 10_000, 0.5) == expected


@pytest.mark.parametrize(
    ("observed", "expected"),
    [(130, "High (0.025)"), (160, "High (0.001)"), (75, "Low (0.025)"), (50, "Low (0.001)")],
)
def test_ratio_labels_against_100_expected(observed: int, expected: str) -> None:
    assert funnel.ratio_significance(observed, 100.0) == expected


def test_a_small_ratio_uses_exact_limits() -> None:
    # O = 0 against E = 4: exact upper at 95% is 3.69 < 4, at 99.8% it is 6.9 > 4.
    assert funnel.ratio_significance(0, 4.0) == "Low (0.025)"
    assert funnel.ratio_significance(0, 7.5) == "Low (0.001)"


def test_dsr_from_fewer_than_10_events_is_not_applicable() -> None:
    label = funnel.rate_significance(9, 100.0, 0.0001, rate_type="dsr")
    assert label == "Not applicable for events less than 10 for dsrs"


def test_a_unit_without_a_denominator_is_not_significant() -> None:
    assert funnel.rate_significance(0, None, 0.01) == "Not significant"


def test_crude_zero_counts_use_the_real_denominator_and_move_the_average() -> None:
    with_pop = funnel.rate_significances(
        [0, 500, 520], [0.0, 100.0, 104.0], "crude", 1e5, [300_000.0, 500_000.0, 500_000.0]
    )
    assert with_pop[0] == "Low (0.001)"
    assert funnel.derived_denominator(0, None, "dsr", 1e5) is None
    assert funnel.derived_denominator(0, 0.0, "crude", 1e5) is None
    assert funnel.rate_average([0, 500], [300_000.0, 500_000.0]) == 500 / 800_000


def test_funnel_points_blank_small_dsrs_and_divide_by_the_years() -> None:
    points = funnel_limits.funnel_points([5, 300], [80.0, 150.0], "dsr", 1e5, 3)
    assert points[0] == funnel_limits.FunnelPoint(None, None)
    assert points[1].rate_chart == 150.0
    assert points[1].denominator_derived == pytest.approx(1e5 * 300 / 150 / 3)


# --- validation -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: funnel.proportion_significance(11, 10, 0.5), "0 <= x <= n"),
        (lambda: funnel.proportion_significance(-1, 10, 0.5), "0 <= x <= n"),
        (lambda: funnel.proportion_significance(1, 0, 0.5), "0 <= x <= n"),
        (lambda: funnel.proportion_significance(1, 10, 1.5), "benchmark proportion"),
        (lambda: funnel.proportion_significance(math.nan, 10, 0.5), "finite"),
        (lambda: funnel.ratio_significance(-1, 10.0), "observed count"),
        (lambda: funnel.ratio_significance(5, 0.0), "expected count"),
        (lambda: funnel.rate_significance(5, 100.0, -1.0), "benchmark rate"),
        (lambda: funnel.proportion_significances([1, 2], [10]), "differ in length"),
        (lambda: funnel_limits.proportion_funnel_limits([], []), "empty"),
        (lambda: funnel.rate_significances([5], [0.0], "crude", 1e5), "rate of 0"),
        (lambda: funnel.rate_significances([5], [-3.0], "crude", 1e5), "rate must be >= 0"),
        (lambda: funnel.rate_significances([0], [None], "dsr", 1e5), "no unit"),
        (lambda: funnel_limits.rate_funnel_limits([5], [10.0], "crude", 1e5, 0), "years_of_data"),
        (lambda: funnel_limits.rate_funnel_limits([5], [10.0], "crude", 0, 1), "multiplier"),
        (lambda: funnel_limits.poisson_funnel_expected(3, 1.5, "low"), "tail probability"),
    ],
)
def test_unusable_inputs_are_statistics_errors(call: object, message: str) -> None:
    assert callable(call)
    with pytest.raises(StatisticsError, match=message):
        call()
