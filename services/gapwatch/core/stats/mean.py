"""Means with Student's t limits (stats-methods §4, PHE's ``phe_mean``).

Student's t rather than the normal because indicator means are often over a handful of
areas or practices, where z would give limits that are too narrow.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

from scipy.stats import t as student_t

from gapwatch.core.errors import StatisticsError
from gapwatch.core.stats.confidence import (
    DEFAULT_LEVELS,
    Estimate,
    Interval,
    no_limits,
    normalise_levels,
)

__all__ = ["MEAN", "STUDENT_T", "MeanEstimate", "mean"]

MEAN: Final = "mean"
STUDENT_T: Final = "Student's t-distribution"


@dataclass(frozen=True, slots=True)
class MeanEstimate:
    """The mean with the parts PHE publishes beside it.

    ``value_count`` counts every row, missing ones included, because PHE does; a missing
    value makes ``value_sum``, ``stdev`` and the estimate missing. ``stdev`` is the sample
    SD (divisor k - 1), so it is None for a single value.
    """

    value_sum: float | None
    value_count: int
    stdev: float | None
    estimate: Estimate


def _t_quantile(level: float, freedom: int) -> float:
    """Two-sided Student's t quantile, |t^-1((1 - level)/2; freedom)|."""
    return float(student_t.ppf((1 + level) / 2, freedom))


def _intervals(
    value: float, stdev: float | None, count: int, levels: tuple[float, ...]
) -> tuple[Interval, ...]:
    if stdev is None:
        return no_limits(levels)
    standard_error = stdev / math.sqrt(count)
    intervals = []
    for level in levels:
        half_width = _t_quantile(level, count - 1) * standard_error
        intervals.append(Interval(level, value - half_width, value + half_width))
    return tuple(intervals)


def mean(
    values: Sequence[float | None],
    levels: float | Iterable[float] = DEFAULT_LEVELS,
) -> MeanEstimate:
    """Mean of ``values`` with Student's t limits on k - 1 degrees of freedom.

    None is a missing value (kept in the count, making the result missing); NaN and
    infinities are rejected because they would silently poison the sum.
    """
    wanted = normalise_levels(levels)
    count = len(values)
    if count == 0:
        raise StatisticsError("a mean needs at least one value")
    if any(v is not None and not math.isfinite(v) for v in values):
        raise StatisticsError("a mean's values must be finite numbers or missing (None)")
    present = [float(v) for v in values if v is not None]
    if len(present) < count:
        missing = no_limits(wanted)
        return MeanEstimate(None, count, None, Estimate(None, missing, MEAN, STUDENT_T))
    total = math.fsum(present)
    stdev = statistics.stdev(present) if count > 1 else None
    value = total / count
    estimate = Estimate(value, _intervals(value, stdev, count, wanted), MEAN, STUDENT_T)
    return MeanEstimate(total, count, stdev, estimate)
