"""Properties every PHE statistic must keep, plus hand-computed anchors from the spec.

The conformance suite checks PHE's own cases; these check the shape of the answers over
inputs nobody wrote down: limits bracket the estimate, a higher level never narrows the
interval, zero counts and x = n behave, and bad inputs are refused.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from gapwatch.core.errors import StatisticsError
from gapwatch.core.stats.confidence import Estimate
from gapwatch.core.stats.dsr import (
    DOBSON_NONINDEPENDENT,
    ESP2013_WEIGHTS,
    SUPPRESSED,
    dsr,
    dsr_nonindependent,
)
from gapwatch.core.stats.isr import isr_rate, isr_ratio
from gapwatch.core.stats.mean import mean
from gapwatch.core.stats.proportion import proportion, wilson_lower, wilson_upper
from gapwatch.core.stats.rate import crude_rate, format_multiplier

RISING = (0.9, 0.95, 0.998)
pytestmark = pytest.mark.filterwarnings("error")  # SciPy warnings would mean a NaN somewhere

counts = st.integers(min_value=0, max_value=10**6)
populations = st.floats(min_value=1.0, max_value=1e8, allow_nan=False)
multipliers = st.sampled_from([1.0, 100.0, 1000.0, 100000.0])


def assert_brackets_and_widens(estimate: Estimate) -> None:
    """Each interval contains the value, and each higher level contains the lower one."""
    assert estimate.value is not None
    previous: tuple[float, float] | None = None
    for level in RISING:
        interval = estimate.at(level)
        assert interval.lower is not None and interval.upper is not None
        assert interval.lower <= estimate.value <= interval.upper
        if previous is not None:
            assert interval.lower <= previous[0] and interval.upper >= previous[1]
        previous = (interval.lower, interval.upper)


@st.composite
def proportions(draw: st.DrawFn) -> tuple[float, float]:
    """(x, n) with 0 <= x <= n: whole counts, or weighted (fractional) numerators."""
    n = draw(st.integers(min_value=1, max_value=10**6))
    if draw(st.booleans()):
        return float(draw(st.integers(min_value=0, max_value=n))), float(n)
    return draw(st.floats(min_value=0.0, max_value=1.0)) * n, float(n)


@st.composite
def age_bands(draw: st.DrawFn) -> tuple[list[float], list[float], list[float]]:
    """Counts, populations and standard weights for 1-19 bands (some weight non-zero)."""
    size = draw(st.integers(min_value=1, max_value=19))
    band_counts = draw(st.lists(st.integers(0, 2000), min_size=size, max_size=size))
    pops = draw(st.lists(st.integers(1, 10**6), min_size=size, max_size=size))
    weights = draw(st.lists(st.integers(0, 10000), min_size=size, max_size=size))
    weights[draw(st.integers(0, size - 1))] += 1
    return [float(x) for x in band_counts], [float(n) for n in pops], [float(w) for w in weights]


@given(proportions(), multipliers)
@example((2.934097409479364e-11, 132140.0), 1.0)  # tiny weighted x: the naive form cancels
def test_wilson_limits_bracket_the_proportion_and_widen_with_the_level(
    x_n: tuple[float, float], multiplier: float
) -> None:
    assert_brackets_and_widens(proportion(*x_n, RISING, multiplier))


@given(st.integers(min_value=1, max_value=10**6), multipliers)
def test_wilson_is_exactly_zero_at_x_0_and_the_multiplier_at_x_n(n: int, multiplier: float) -> None:
    assert wilson_lower(0, n, 0.95) == 0.0
    assert wilson_upper(n, n, 0.998) == 1.0
    assert proportion(0, n, RISING, multiplier).at(0.998).lower == 0.0
    assert proportion(n, n, RISING, multiplier).at(0.9).upper == multiplier


def test_a_level_of_one_gives_the_whole_unit_interval() -> None:
    assert proportion(3, 10, 1.0, 100).at(1.0) == proportion(3, 10, 100, 100).at(100)
    interval = proportion(3, 10, 1.0, 100).at(1.0)
    assert (interval.lower, interval.upper) == (0.0, 100.0)


@settings(deadline=None)  # the first chi-squared quantile call warms SciPy up
@given(counts, populations, multipliers)
def test_crude_rate_limits_bracket_the_rate_and_widen_with_the_level(
    x: int, n: float, multiplier: float
) -> None:
    estimate = crude_rate(x, n, RISING, multiplier)
    assert_brackets_and_widens(estimate)
    assert estimate.method == ("Exact" if x < 10 else "Byars")


@given(populations)
def test_a_zero_count_has_an_exact_lower_limit_of_zero(n: float) -> None:
    estimate = crude_rate(0, n, RISING)
    assert estimate.value == 0.0
    assert all(interval.lower == 0.0 for interval in estimate.intervals)


@settings(deadline=None)
@given(st.lists(st.floats(-1e6, 1e6), min_size=2, max_size=50))
def test_mean_limits_bracket_the_mean_and_widen_with_the_level(values: list[float]) -> None:
    assert_brackets_and_widens(mean(values, RISING).estimate)


def test_a_single_value_or_a_missing_one_gives_no_limits() -> None:
    single = mean([4.0], RISING)
    assert (single.estimate.value, single.stdev) == (4.0, None)
    assert single.estimate.at(0.95).lower is None
    gappy = mean([1.0, None, 3.0])
    assert (gappy.value_sum, gappy.value_count, gappy.estimate.value) == (None, 3, None)


@given(age_bands(), multipliers)
def test_dsr_limits_bracket_the_dsr_unless_suppressed(
    bands: tuple[list[float], list[float], list[float]], multiplier: float
) -> None:
    result = dsr(*bands, levels=RISING, multiplier=multiplier)
    if result.total_count < 10:
        assert result.estimate.value is None
        assert result.estimate.statistic == SUPPRESSED
    else:
        assert_brackets_and_widens(result.estimate)


@given(st.lists(st.integers(1, 10**6), min_size=19, max_size=19))
def test_a_dsr_with_no_events_is_suppressed(pops: list[int]) -> None:
    result = dsr([0] * 19, pops, ESP2013_WEIGHTS, RISING)
    assert (result.total_count, result.total_pop) == (0, sum(pops))
    assert result.estimate.value is None and result.estimate.statistic == SUPPRESSED
    assert all(i.lower is None and i.upper is None for i in result.estimate.intervals)


@given(age_bands())
def test_non_independent_dsr_with_single_events_is_the_plain_dsr(
    bands: tuple[list[float], list[float], list[float]],
) -> None:
    band_counts, pops, weights = bands
    plain = dsr(band_counts, pops, weights, RISING).estimate
    single = dsr_nonindependent([{1: x} for x in band_counts], pops, weights, RISING).estimate
    assert single.value == plain.value
    for mine, theirs in zip(single.intervals, plain.intervals, strict=True):
        assert mine.lower == pytest.approx(theirs.lower, rel=1e-12)
        assert mine.upper == pytest.approx(theirs.upper, rel=1e-12)


@given(age_bands(), st.integers(min_value=2, max_value=5))
def test_repeat_events_widen_the_dsr_interval(
    bands: tuple[list[float], list[float], list[float]], frequency: int
) -> None:
    """Putting the same events on fewer people (f each) keeps the DSR, widens the limits."""
    people, pops, weights = bands
    independent = dsr([frequency * u for u in people], pops, weights, RISING).estimate
    clustered = dsr_nonindependent([{frequency: u} for u in people], pops, weights, RISING)
    assert clustered.estimate.method == DOBSON_NONINDEPENDENT
    if independent.value is None:
        assert clustered.estimate.value is None
    else:
        assert clustered.estimate.value == pytest.approx(independent.value)
        wide, narrow = clustered.estimate.at(0.95), independent.at(0.95)
        assert wide.lower is not None and narrow.lower is not None
        assert wide.upper is not None and narrow.upper is not None
        assert wide.lower <= narrow.lower * (1 + 1e-12)
        assert wide.upper >= narrow.upper * (1 - 1e-12)


@settings(deadline=None)
@given(age_bands())
def test_isr_limits_bracket_the_ratio_and_the_rate_is_the_ratio_rescaled(
    bands: tuple[list[float], list[float], list[float]],
) -> None:
    band_counts, pops, _ = bands
    ref_counts, ref_pops = [10.0 * (i + 1) for i in range(len(pops))], [1000.0] * len(pops)
    ratio = isr_ratio(band_counts, pops, ref_counts, ref_pops, levels=RISING)
    rate = isr_rate(band_counts, pops, ref_counts, ref_pops, levels=RISING)
    assert_brackets_and_widens(ratio.estimate)
    assert rate.ref_rate is not None and ratio.estimate.value is not None
    assert rate.estimate.value == pytest.approx(ratio.estimate.value * rate.ref_rate)


def test_isr_with_no_local_population_is_missing_not_an_error() -> None:
    result = isr_ratio([3, 4], [0, None], [10, 20], [100, 100], levels=RISING)
    assert (result.observed, result.expected, result.estimate.value) == (7, 0, None)


INVALID: list[tuple[str, Callable[[], object]]] = [
    ("negative numerator", lambda: proportion(-1, 10)),
    ("zero denominator", lambda: proportion(0, 0)),
    ("numerator above denominator", lambda: proportion(11, 10)),
    ("NaN numerator", lambda: proportion(math.nan, 10)),
    ("Wilson primitive, x > n", lambda: wilson_lower(2, 1, 0.95)),
    ("level below 0.9", lambda: proportion(1, 10, 0.8)),
    ("level above 100", lambda: crude_rate(1, 10, 101)),
    ("negative rate numerator", lambda: crude_rate(-1, 10)),
    ("zero rate denominator", lambda: crude_rate(1, 0)),
    ("zero multiplier", lambda: crude_rate(1, 10, multiplier=0)),
    ("empty mean", lambda: mean([])),
    ("infinite mean value", lambda: mean([1.0, math.inf])),
    ("DSR zero population", lambda: dsr([5, 5], [100, 0], [1, 1])),
    ("DSR negative weight", lambda: dsr([5, 5], [100, 100], [1, -1])),
    ("DSR band lengths differ", lambda: dsr([5, 5], [100], [1, 1])),
    ("DSR all weights zero", lambda: dsr([50], [100], [0])),
    ("DSR negative frequency", lambda: dsr_nonindependent([{-1: 5}], [100], [1])),
    ("ISR counts and observed", lambda: isr_ratio([1], [10], [1], [10], observed=1)),
    ("ISR neither counts nor observed", lambda: isr_ratio(None, [10], [1], [10])),
    ("ISR zero reference population", lambda: isr_rate([1], [10], [1], [0])),
    ("ISR negative local population", lambda: isr_ratio([1], [-10], [1], [10])),
]


@pytest.mark.parametrize(("what", "call"), INVALID, ids=[what for what, _ in INVALID])
def test_invalid_inputs_raise_a_statistics_error(what: str, call: Callable[[], object]) -> None:
    with pytest.raises(StatisticsError):
        call()


def test_missing_inputs_give_missing_results_not_errors() -> None:
    assert proportion(None, 100).value is None
    assert proportion(5, None, multiplier=100).statistic == "percentage"
    assert crude_rate(None, 100).method == ""
    assert crude_rate(12, None).method == "Byars"


# Hand-computed anchors, from stats-methods.md where it gives them.


def test_wilson_65_of_100_matches_the_spec_anchor() -> None:
    estimate = proportion(65, 100, (0.95, 0.998))
    assert estimate.at(0.95).lower == pytest.approx(0.552544, abs=5e-7)
    assert estimate.at(0.95).upper == pytest.approx(0.736358, abs=5e-7)
    assert estimate.at(0.998).lower == pytest.approx(0.495495, abs=5e-7)
    assert estimate.at(0.998).upper == pytest.approx(0.778354, abs=5e-7)
    assert (estimate.statistic, estimate.method) == ("proportion of 1", "Wilson")


def test_crude_rates_match_the_spec_anchors() -> None:
    exact = crude_rate(1, 100, 0.95, 100).at(0.95)
    byar = crude_rate(65, 100, 0.95, 100).at(0.95)
    assert (exact.lower, exact.upper) == pytest.approx((0.025318, 5.571643), abs=5e-7)
    assert (byar.lower, byar.upper) == pytest.approx((50.163188, 82.849139), abs=5e-7)
    assert crude_rate(0, 100, 0.95, 100).at(0.95).upper == pytest.approx(-math.log(0.025))
    assert crude_rate(0, 100, 0.95, 100).statistic == "rate per 100"


def test_mean_of_one_two_three_uses_t_with_two_degrees_of_freedom() -> None:
    result = mean([1.0, 2.0, 3.0], 0.95)
    half_width = 4.302652729911275 / math.sqrt(3)  # t(0.975; 2) x sd 1 / sqrt 3
    assert (result.value_sum, result.stdev, result.estimate.value) == (6.0, 1.0, 2.0)
    interval = result.estimate.at(0.95)
    assert (interval.lower, interval.upper) == pytest.approx((2 - half_width, 2 + half_width))


def test_a_one_band_dsr_is_the_crude_rate_with_byar_limits() -> None:
    """With one band sqrt(V/O) = 1/n, so Dobson's limits collapse to O_lim / n x m."""
    result = dsr([100], [5000], [1], 0.95)
    rate = crude_rate(100, 5000, 0.95)
    got, crude = result.estimate.at(0.95), rate.at(0.95)
    assert result.estimate.value == pytest.approx(rate.value)
    assert (got.lower, got.upper) == pytest.approx((crude.lower, crude.upper))
    assert result.estimate.statistic == "dsr per 100000"


def test_isr_ratio_of_twenty_observed_to_ten_expected() -> None:
    result = isr_ratio([20, None], [100, 0], [10, 7], [100, 50], levels=0.95, refvalue=100)
    assert (result.observed, result.expected, result.estimate.value) == (20, 10, 200)
    got, crude = result.estimate.at(0.95), crude_rate(20, 10, 0.95, 100).at(0.95)
    assert (got.lower, got.upper) == pytest.approx((crude.lower, crude.upper))
    assert result.estimate.statistic == "indirectly standardised ratio x 100"


@pytest.mark.parametrize(
    ("multiplier", "text"), [(100000.0, "100000"), (1.0, "1"), (0.5, "0.5"), (1e7, "10000000")]
)
def test_multipliers_are_printed_without_scientific_notation(multiplier: float, text: str) -> None:
    assert format_multiplier(multiplier) == text
