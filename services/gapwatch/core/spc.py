"""NHS Making Data Count XmR charts, as NHSRplotthedots 0.2.2 computes them (docs/spc.md).

Pure arithmetic on one series: limits per rebase period, the four special-cause rules,
their labels and precedence, the point types by improvement direction, and the
variation and assurance icons. Two switches reproduce the known variants:
``screen_outliers`` (True: the R package; False: the MDC Excel tools) and
``two_in_three`` ("band": R 0.2.2 counts points between the 2-sigma line and the process
limit; "beyond": MDC since late 2023 counts every point beyond 2 sigma).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

__all__ = [
    "LIMIT",
    "NEAR_LIMIT",
    "SCREEN",
    "Direction",
    "Limits",
    "SpcOptions",
    "SpcPoint",
    "SpcResult",
    "assurance",
    "point_type",
    "special_cause_types",
    "spc",
    "variation_icon",
    "xmr_limits",
]

LIMIT = 2.66
"""3 / d2 (d2 = 1.128) as MDC rounds it; 3 / 1.128 differs in the 3rd-4th figure."""
NEAR_LIMIT = 2 * (LIMIT / 3)
"""The "2 sigma" lines, as the R package computes them."""
SCREEN = 3.267
"""D4: a moving range at or above 3.267 x the mean is dropped when screening."""
TRIAL_BELOW = 13
"""Periods with fewer points have trial limits (MDC shows limits and icons from 13)."""

Direction = Literal["increase", "decrease", "neutral"]


@dataclass(frozen=True, slots=True)
class SpcOptions:
    screen_outliers: bool = True
    two_in_three: Literal["band", "beyond"] = "band"
    run_length: int = 7
    """N for both the shift and the trend rule (MDC default 7)."""
    fix_after: int | None = None
    """Compute each period's limits from its first N points only (N >= 12)."""

    def __post_init__(self) -> None:
        if self.run_length < 2:
            raise ValueError("run_length must be at least 2")
        if self.fix_after is not None and self.fix_after < 12:
            raise ValueError("fix_after must be at least 12 points")
        if self.two_in_three not in ("band", "beyond"):
            raise ValueError("two_in_three must be 'band' or 'beyond'")


@dataclass(frozen=True, slots=True)
class Limits:
    mean: float
    lpl: float
    upl: float
    lower_2sigma: float
    upper_2sigma: float
    mean_moving_range: float
    points: int
    """Points in the period (the limits are trial below ``TRIAL_BELOW``)."""

    @property
    def trial(self) -> bool:
        return self.points < TRIAL_BELOW


@dataclass(frozen=True, slots=True)
class SpcPoint:
    value: float
    period: int
    """Rebase period, counted from 0."""
    limits: Limits
    special_cause: str
    """NHSRplotthedots' label: "Above UCL", "7 Point Trend (Increasing)", ...,
    "Common Cause"."""
    point_type: str
    """common_cause, special_cause_improvement, special_cause_concern,
    special_cause_neutral_high or special_cause_neutral_low."""


@dataclass(frozen=True, slots=True)
class SpcResult:
    points: list[SpcPoint]
    variation: str | None
    """Icon of the latest point (None for an empty series)."""
    assurance: str | None
    """consistent_pass, consistent_fail or inconsistent; None without a target or for a
    neutral direction."""


def xmr_limits(values: Sequence[float], options: SpcOptions = SpcOptions()) -> Limits:
    """One period's limits: mean of the baseline, mean moving range (screened once when
    ``screen_outliers``: ranges >= 3.267 x the mean are dropped; the centre is kept)."""
    baseline = list(values[: options.fix_after] if options.fix_after else values)
    mean = _mean(baseline)
    ranges = [abs(b - a) for a, b in zip(baseline, baseline[1:], strict=False)]
    amr = _mean(ranges)
    if options.screen_outliers and ranges:
        amr = _mean([r for r in ranges if r < SCREEN * amr])
    return Limits(
        mean,
        mean - LIMIT * amr,
        mean + LIMIT * amr,
        mean - NEAR_LIMIT * amr,
        mean + NEAR_LIMIT * amr,
        amr,
        len(values),
    )


def _mean(xs: Sequence[float]) -> float:
    """The mean rounded once, exactly, as R's ``mean()`` gives it (a long-double sum
    with a residual correction): ``fsum / n`` rounds twice, so twelve 0.1s would average
    0.10000000000000002 and sit "below" their own centre line, a false 7-point run."""
    if not xs:
        return math.nan
    return float(sum(map(Fraction, xs), Fraction(0)) / len(xs))


def _sign(x: float) -> int:
    return (x > 0) - (x < 0)


def special_cause_types(
    values: Sequence[float], limits: Limits, options: SpcOptions = SpcOptions()
) -> list[str]:
    """Each point's label within one period, first match in the order: outside the
    limits, trend, two in three, shift (R's ``ptd_special_cause_type``)."""
    n, run = len(values), options.run_length
    side = [_sign(v - limits.mean) for v in values]
    outside = [v > limits.upl or v < limits.lpl for v in values]
    beyond_2sigma = [v > limits.upper_2sigma or v < limits.lower_2sigma for v in values]
    close = (
        [b and not o for b, o in zip(beyond_2sigma, outside, strict=True)]
        if options.two_in_three == "band"
        else beyond_2sigma
    )
    trend = _part_of(_trend_ends(values, run), run)
    shift = _part_of(_shift_ends(side, run), run)
    two_in_three = _two_in_three(close, side)
    steps = [_sign(b - a) for a, b in zip(values, values[1:], strict=False)]
    labels = []
    for i in range(n):
        above = "Above" if side[i] > 0 else "Below"
        if outside[i]:
            labels.append("Above UCL" if side[i] == 1 else "Below LCL")
        elif trend[i]:
            # A point in a trend on both sides takes the slope to the next point.
            if i + 1 < n and trend[i + 1]:
                slope = steps[i]
            else:
                slope = steps[i - 1] if i > 0 else 0
            labels.append(f"{run} Point Trend ({'In' if slope == 1 else 'De'}creasing)")
        elif two_in_three[i]:
            labels.append(f"2 in 3 {above} CL")
        elif shift[i]:
            labels.append(f"{run} Points {above} CL")
        else:
            labels.append("Common Cause")
    return labels


def _trend_ends(values: Sequence[float], run: int) -> list[int]:
    """+1/-1 where a point ends ``run`` points each strictly above (below) the last."""
    ends = [0] * len(values)
    for i in range(run - 1, len(values)):
        steps = {_sign(values[j] - values[j - 1]) for j in range(i - run + 2, i + 1)}
        if steps == {1}:
            ends[i] = 1
        elif steps == {-1}:
            ends[i] = -1
    return ends


def _shift_ends(side: Sequence[int], run: int) -> list[int]:
    """1 where a point ends ``run`` points on the same side of the mean (not on it)."""
    return [
        int(
            i >= run - 1 and side[i] != 0 and all(side[j] == side[i] for j in range(i - run + 1, i))
        )
        for i in range(len(side))
    ]


def _part_of(ends: Sequence[int], run: int) -> list[bool]:
    """A point is part of a run if a run ends on it or on one of the next run-1 points."""
    n = len(ends)
    return [any(ends[j] != 0 for j in range(i, min(n, i + run))) for i in range(n)]


def _two_in_three(close: Sequence[bool], side: Sequence[int]) -> list[bool]:
    """Close points in a window of 3 with at least 2 close points, all 3 on one side."""
    n = len(close)
    flagged = [False] * n
    for start in range(n - 2):
        window = range(start, start + 3)
        if sum(close[j] for j in window) >= 2 and abs(sum(side[j] for j in window)) == 3:
            for j in window:
                flagged[j] = flagged[j] or close[j]
    return flagged


def point_type(special_cause: str, direction: Direction) -> str:
    """The label oriented by the indicator's improvement direction."""
    if "Above" in special_cause or "Increasing" in special_cause:
        v = 1
    elif "Below" in special_cause or "Decreasing" in special_cause:
        v = -1
    else:
        return "common_cause"
    if direction == "neutral":
        return "special_cause_neutral_high" if v > 0 else "special_cause_neutral_low"
    good = v if direction == "increase" else -v
    return "special_cause_improvement" if good > 0 else "special_cause_concern"


def variation_icon(latest_point_type: str, direction: Direction) -> str:
    """MDC's variation icon: the latest point's type, with whether values are high or low."""
    if latest_point_type == "special_cause_improvement":
        return "improvement_high" if direction == "increase" else "improvement_low"
    if latest_point_type == "special_cause_concern":
        return "concern_low" if direction == "increase" else "concern_high"
    if latest_point_type.startswith("special_cause_neutral_"):
        return latest_point_type.removeprefix("special_cause_")
    return "common_cause"


def assurance(target: float | None, limits: Limits, direction: Direction) -> str | None:
    """Will the process meet the target? From the latest period's limits."""
    if target is None or direction == "neutral" or math.isnan(limits.upl):
        return None
    if target > limits.upl:
        return "consistent_fail" if direction == "increase" else "consistent_pass"
    if target < limits.lpl:
        return "consistent_pass" if direction == "increase" else "consistent_fail"
    return "inconsistent"


def spc(
    values: Sequence[float],
    direction: Direction,
    *,
    rebase: Sequence[bool] | None = None,
    target: float | None = None,
    options: SpcOptions = SpcOptions(),
) -> SpcResult:
    """The chart of one series in time order. ``rebase[i]`` starts a new period at
    point i; nothing (mean, ranges, rule windows) crosses a period boundary."""
    if rebase is not None and len(rebase) != len(values):
        raise ValueError("rebase must have one flag per value")
    if not values:
        return SpcResult([], None, None)
    starts = [i for i in range(len(values)) if i == 0 or (rebase is not None and rebase[i])]
    points: list[SpcPoint] = []
    limits = None
    for period, (start, end) in enumerate(zip(starts, [*starts[1:], len(values)], strict=True)):
        chunk = values[start:end]
        limits = xmr_limits(chunk, options)
        for value, label in zip(chunk, special_cause_types(chunk, limits, options), strict=True):
            points.append(SpcPoint(value, period, limits, label, point_type(label, direction)))
    if not points or limits is None:
        return SpcResult([], None, None)
    return SpcResult(
        points,
        variation_icon(points[-1].point_type, direction),
        assurance(target, limits, direction),
    )
