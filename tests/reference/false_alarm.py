"""How often the rules call the latest point of a stable process a "concerning" special
cause: the false-alarm rate an alert on the latest point inherits from the rules.

The monitor alerts when the latest closed point of a non-trial period is
``special_cause_concern``. For a process with no change at all, the share of series
whose latest point is flagged so is the alert rate the rules imply, which an observed
alert rate (90 days x every ICB x several indicators) should be compared against.

The rules are NHSRplotthedots 0.2.2's, with its defaults (``screen_outliers = TRUE``,
run length 7, two-in-three counting only the 2-3 sigma band) and limits from all points
of one period (no rebase, no ``fix_after_n_points``). For the latest point only, R's
windows reduce to short checks (ptd_calculate_point_type.R):

- outside the limits: ``y[n] > upl`` (Above UCL) or ``y[n] < lpl`` (Below LCL);
- trend: a 7-point trend can only include point n by ending there, so the last 7 points
  strictly rise (fall); the label takes the slope from point n-1 (no next point);
- two in three: only the window (n-2, n-1, n) can qualify (the windows reaching past
  the end are zero-padded, so their three ``relative_to_mean`` cannot sum to +/-3):
  point n is close to the limits, at least 2 of the 3 are, and all 3 are on one side;
- shift: the last 7 points have the same non-zero ``sign(y - mean)``.

The first that applies names the label (outside, trend, two in three, shift), and the
label's direction (+1 above / increasing, -1 below / decreasing) against the concerning
side decides "concern". This vectorised form is checked against the literal oracle
``tests.reference.nhsrplotthedots`` in tests/unit/core/test_spc_false_alarm.py.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = [
    "GENERATORS",
    "RULES",
    "FalseAlarmRate",
    "concerning_false_alarm_rate",
    "latest_point_labels",
]

LIMIT = 2.66
LIMITCLOSE = 2 * (LIMIT / 3)
SCREEN = 3.267
RUN = 7
TRIAL_BELOW = 13

RULES = ("outside", "trend", "two_in_three", "shift")
"""Rule codes 1..4 in ``latest_point_labels``; 0 is common cause."""

Values = npt.NDArray[np.float64]
Generator = Callable[[np.random.Generator, int, int], Values]
"""(rng, series_count, length) -> array of shape (series_count, length)."""


def _normal(rng: np.random.Generator, count: int, length: int) -> Values:
    return rng.standard_normal((count, length))


def _poisson_difference(mean: float) -> Generator:
    """A gap as "Q1 - Q5": the difference of two independent Poisson counts of the same
    mean (a stable gap of zero), kept in counts so that ties with the centre line and
    between consecutive points happen as they would in real data."""

    def generate(rng: np.random.Generator, count: int, length: int) -> Values:
        q1 = rng.poisson(mean, (count, length))
        q5 = rng.poisson(mean, (count, length))
        return (q1 - q5).astype(np.float64)

    return generate


GENERATORS: dict[str, Generator] = {
    "normal": _normal,
    "poisson20_difference": _poisson_difference(20.0),
    "poisson200_difference": _poisson_difference(200.0),
}


def latest_point_labels(values: Values) -> tuple[npt.NDArray[np.int8], npt.NDArray[np.int8]]:
    """For each row (one series, one period, in time order): the rule that labels the
    latest point (0 none, 1..4 as ``RULES``) and the label's direction (+1 / -1 / 0)."""
    y = np.asarray(values, dtype=np.float64)
    if y.ndim != 2 or y.shape[1] < RUN:
        raise ValueError("need a 2-d array of series with at least 7 points each")
    mean = y.mean(axis=1, keepdims=True)
    mr = np.abs(np.diff(y, axis=1))
    amr = mr.mean(axis=1, keepdims=True)
    keep = mr < SCREEN * amr
    with np.errstate(invalid="ignore", divide="ignore"):
        amr = (mr * keep).sum(axis=1, keepdims=True) / keep.sum(axis=1, keepdims=True)
    lpl, upl = mean - LIMIT * amr, mean + LIMIT * amr
    nlpl, nupl = mean - LIMITCLOSE * amr, mean + LIMITCLOSE * amr
    last3 = y[:, -3:]
    side3 = np.sign(last3 - mean)
    outside3 = (last3 > upl) | (last3 < lpl)
    close3 = ~outside3 & ((last3 < nlpl) | (last3 > nupl))
    side = side3[:, -1]

    steps = np.sign(np.diff(y[:, -RUN:], axis=1))
    trend = np.abs(steps.sum(axis=1)) == RUN - 1
    two_in_three = close3[:, -1] & (close3.sum(axis=1) >= 2) & (np.abs(side3.sum(axis=1)) == 3)
    side7 = np.sign(y[:, -RUN:] - mean)
    shift = (np.abs(side7.sum(axis=1)) == RUN) & (side != 0)

    rule = np.select([outside3[:, -1], trend, two_in_three, shift], [1, 2, 3, 4], 0)
    direction = np.select(
        [outside3[:, -1], trend, two_in_three, shift], [side, steps[:, -1], side, side], 0
    )
    return rule.astype(np.int8), direction.astype(np.int8)


@dataclass(frozen=True, slots=True)
class FalseAlarmRate:
    """The share of stable series whose latest point is a concerning special cause."""

    rate: float
    hits: int
    series_count: int
    length: int
    seed: int
    generator: str
    by_rule: dict[str, int]
    """Concerning hits by the rule that labelled the latest point."""

    @property
    def standard_error(self) -> float:
        return math.sqrt(self.rate * (1 - self.rate) / self.series_count)

    def interval(self, z: float = 3.2905) -> tuple[float, float]:
        """Normal-approximation interval (z = 3.2905: two-sided 99.9%)."""
        half = z * self.standard_error
        return self.rate - half, self.rate + half


def concerning_false_alarm_rate(
    series_count: int,
    length: int,
    seed: int,
    generator: str | Generator = "normal",
    *,
    concerning_side: int = 1,
    chunk: int = 50_000,
) -> FalseAlarmRate:
    """Monte Carlo estimate of P(latest point is a concerning special cause) for a stable
    process: ``series_count`` series of ``length`` points from ``generator`` (a name in
    ``GENERATORS`` or a callable) with ``numpy.random.default_rng(seed)``.

    ``concerning_side`` is +1 when high values are bad (improvement direction
    "decrease", e.g. a widening gap) and -1 when low values are bad. Stable iid series
    are symmetric, so both sides give the same rate up to Monte Carlo error.
    """
    if length < TRIAL_BELOW:
        raise ValueError("limits from fewer than 13 points are trial limits: no alerts")
    if concerning_side not in (1, -1):
        raise ValueError("concerning_side must be +1 or -1")
    generate = GENERATORS[generator] if isinstance(generator, str) else generator
    name = generator if isinstance(generator, str) else getattr(generator, "__name__", "custom")
    rng = np.random.default_rng(seed)
    hits = 0
    by_rule = dict.fromkeys(RULES, 0)
    done = 0
    while done < series_count:
        count = min(chunk, series_count - done)
        rule, direction = latest_point_labels(generate(rng, count, length))
        concern = direction == concerning_side
        hits += int(concern.sum())
        for code, rule_name in enumerate(RULES, start=1):
            by_rule[rule_name] += int((concern & (rule == code)).sum())
        done += count
    return FalseAlarmRate(hits / series_count, hits, series_count, length, seed, name, by_rule)
