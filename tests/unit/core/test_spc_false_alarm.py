"""The false-alarm rate the rules imply for an alert on the latest point.

A stable process (no change at all) still has its latest point labelled a concerning
special cause now and then, by chance. For a 90-point period with limits from all 90
points and NHSRplotthedots 0.2.2's defaults (screened limits, runs of 7, two-in-three on
the 2-3 sigma band), that happens for about 0.95-0.97% of series on a given side: roughly
one alert per 100 stable series per period, before any real change. The monitor's
observed alert rate on stable seeded history should be compared with this, not with 0.

tests/reference/false_alarm.py computes it (vectorised, checked here against the literal
oracle and gapwatch.core.spc); the constants below are its long-run values.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from gapwatch.core.spc import spc
from tests.reference.false_alarm import (
    RULES,
    concerning_false_alarm_rate,
    latest_point_labels,
)
from tests.reference.nhsrplotthedots import ptd_spc

LENGTH = 90
"""90 daily points: one non-trial period (13 or more points)."""

# Long-run P(latest point is a concerning special cause), concerning side = high values,
# from concerning_false_alarm_rate(4_000_000, 90, seed=1, generator); the 99.9% interval
# half-width is 3.29 x sqrt(p (1 - p) / 4e6) = 0.00016. By rule (per 1,000 series):
#   normal                 outside 2.12, trend 0.21, two-in-three 0.62, shift 6.61
#   poisson20_difference   outside 2.27, trend 0.07, two-in-three 0.63, shift 6.76
#   poisson200_difference  outside 2.13, trend 0.14, two-in-three 0.64, shift 6.58
# The low side (concerning_side = -1, same series) gave 0.00955225 / 0.0097175 /
# 0.0094615, each within the interval, as symmetry requires.
LONG_RUN = {
    "normal": 0.00956175,
    "poisson20_difference": 0.00972975,
    "poisson200_difference": 0.009485,
}
LONG_RUN_SERIES = 4_000_000

SERIES = 100_000
SEED = 20240611
Z_999 = 3.2905
"""Two-sided 99.9% normal quantile."""


def _half_width(p: float, n: int) -> float:
    return Z_999 * math.sqrt(p * (1 - p) / n)


@pytest.mark.parametrize("generator", sorted(LONG_RUN))
def test_measured_rate_lies_in_the_long_run_interval(generator: str) -> None:
    """A fresh seeded run of 100,000 series lands within its own 99.9% Monte Carlo band
    (+/-0.00102) around the long-run value: the helper is stable and reproducible."""
    measured = concerning_false_alarm_rate(SERIES, LENGTH, SEED, generator)
    expected = LONG_RUN[generator]
    assert abs(measured.rate - expected) <= _half_width(expected, SERIES)
    assert measured.hits == sum(measured.by_rule.values())
    assert measured.series_count == SERIES and measured.seed == SEED


def test_the_low_side_has_the_same_rate() -> None:
    low = concerning_false_alarm_rate(SERIES, LENGTH, SEED + 1, "normal", concerning_side=-1)
    assert abs(low.rate - LONG_RUN["normal"]) <= _half_width(LONG_RUN["normal"], SERIES)


def test_long_run_rate_is_what_the_rules_imply_for_normal_data() -> None:
    """With known mean and sigma, one side of each rule fires on the latest point with
    probability: shift (1/2)^7 = 0.78%; outside 1 - Phi(3) = 0.135%; trend 1/7! = 0.020%
    (rising); two-in-three P(band) x P(both others above, at least one in band)
    = 0.0214 x (1/4 - (1/2 - 0.0214)^2) = 0.045%: 0.98% in all, before overlaps. Limits
    estimated from the 90 points move the parts (the screen narrows them: outside 0.21%;
    the mean follows the last points: shift 0.66%) but not the total by much."""
    band = 0.5 * (math.erf(3 / math.sqrt(2)) - math.erf(2 / math.sqrt(2)))
    known = 0.5**7 + (0.5 - 0.5 * math.erf(3 / math.sqrt(2))) + 1 / 5040
    known += band * (0.25 - (0.5 - band) ** 2)
    assert known == pytest.approx(0.0098, abs=0.0001)
    assert LONG_RUN["normal"] == pytest.approx(known, rel=0.05)
    assert all(0.009 < p < 0.0105 for p in LONG_RUN.values())


def _with_signals(rng: np.random.Generator, count: int, length: int) -> np.ndarray:
    """Stable series, a third given a shift over the last 7 points and a third a steady
    rise or fall there (inside or beyond the limits); half of all rows are rounded to
    halves (ties, flat steps): every rule and their precedence get exercised."""
    y = rng.standard_normal((count, length))
    third = count // 3
    y[:third, -7:] += rng.uniform(0.5, 3.5, (third, 1))
    slopes = rng.choice([-1, 1], third) * rng.uniform(0.2, 1.2, third)
    ramps = np.outer(slopes, np.arange(7) - 3) + 0.05 * rng.standard_normal((third, 7))
    y[third : 2 * third, -7:] = ramps
    y[::2] = np.round(y[::2] * 2) / 2
    return y


def _reference_rule(label: str) -> tuple[int, int]:
    rule = 0
    if label in ("Above UCL", "Below LCL"):
        rule = 1
    elif "Trend" in label:
        rule = 2
    elif label.startswith("2 in 3"):
        rule = 3
    elif label != "Common Cause":
        rule = 4
    direction = 1 if ("Above" in label or "Increasing" in label) else 0
    direction = -1 if ("Below" in label or "Decreasing" in label) else direction
    return rule, direction


@pytest.mark.parametrize("length", [13, 20, LENGTH])
def test_latest_point_classifier_matches_the_oracle_and_gapwatch(length: int) -> None:
    y = _with_signals(np.random.default_rng(length), 180, length)
    rule, direction = latest_point_labels(y)
    fired: set[int] = set()
    for k, row in enumerate(y.tolist()):
        label = ptd_spc(row)[-1].special_cause_type
        assert (rule[k], direction[k]) == _reference_rule(label), (label, row)
        assert spc(row, "decrease").points[-1].special_cause == label
        fired.add(int(rule[k]))
    assert fired == {0, 1, 2, 3, 4}  # every rule was reached


def test_helper_reports_what_another_engineer_needs() -> None:
    result = concerning_false_alarm_rate(20_000, LENGTH, 3, "poisson20_difference")
    assert set(result.by_rule) == set(RULES)
    low, high = result.interval()
    assert low < result.rate < high
    assert result.generator == "poisson20_difference" and result.length == LENGTH

    def flat(rng: np.random.Generator, count: int, length: int) -> Any:
        return np.zeros((count, length))

    assert concerning_false_alarm_rate(1_000, 20, 0, flat).rate == 0.0
    with pytest.raises(ValueError, match="trial"):
        concerning_false_alarm_rate(10, 12, 0)
