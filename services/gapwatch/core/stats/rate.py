"""Crude rates with Poisson limits (stats-methods §4, PHE's ``phe_rate``).

The count is treated as Poisson and the population as fixed, so the limits are the
count's limits (exact below 10 events, Byar from 10) divided by the population. Also
home to the multiplier checks and wording that every "per <m>" statistic shares.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from decimal import Decimal

from gapwatch.core.errors import StatisticsError
from gapwatch.core.stats.confidence import (
    DEFAULT_LEVELS,
    Estimate,
    Interval,
    no_limits,
    normalise_levels,
)
from gapwatch.core.stats.poisson import BYAR_FROM, count_limits

__all__ = [
    "check_multiplier",
    "count_method",
    "crude_rate",
    "format_multiplier",
    "scaled_count",
]


def check_multiplier(multiplier: float) -> None:
    """A multiplier scales the statistic and its limits, so it must be finite and > 0
    (a negative one would swap the limits)."""
    if not (multiplier > 0 and math.isfinite(multiplier)):
        raise StatisticsError(f"a multiplier must be finite and > 0, got {multiplier!r}")


def format_multiplier(multiplier: float) -> str:
    """The multiplier as PHE's labels print it: never scientific, no trailing ".0".

    100000.0 -> "100000" (R would print "1e+05" by default; the package avoids that),
    0.5 -> "0.5". Going through the shortest repr keeps 0.1 from becoming 0.1000...0055.
    """
    return format(Decimal(repr(float(multiplier))).normalize(), "f")


def count_method(count: float | None) -> str:
    """PHE's ``method`` for limits on a count: "Exact" below 10, "Byars" from 10.

    An empty string when the count is missing, which is what PHE's table holds (NA).
    """
    if count is None:
        return ""
    return "Exact" if count < BYAR_FROM else "Byars"


def _check(x: float | None, n: float | None) -> None:
    """x >= 0 and n > 0; x > n is allowed (people can have several events)."""
    if x is not None and not x >= 0:  # `not >=` also rejects NaN
        raise StatisticsError(f"a rate's numerator must be >= 0, got {x!r}")
    if n is not None and not n > 0:
        raise StatisticsError(f"a rate's denominator must be > 0, got {n!r}")


def crude_rate(
    x: float | None,
    n: float | None,
    levels: float | Iterable[float] = DEFAULT_LEVELS,
    multiplier: float = 100000.0,
) -> Estimate:
    """x/n per ``multiplier`` with the count's Poisson limits scaled the same way.

    A missing (None) numerator or denominator gives missing value and limits, not an
    error. A Byar lower limit that goes negative (only at extreme levels) is None.
    """
    wanted = normalise_levels(levels)
    check_multiplier(multiplier)
    _check(x, n)
    statistic = f"rate per {format_multiplier(multiplier)}"
    return scaled_count(x, n, multiplier, wanted, statistic)


def scaled_count(
    count: float | None,
    divisor: float | None,
    scale: float,
    levels: tuple[float, ...],
    statistic: str,
) -> Estimate:
    """``count / divisor * scale`` with the count's Poisson limits (exact below 10 events,
    Byar from 10) scaled the same way: a crude rate (divisor = population) or an
    indirectly standardised ratio (divisor = expected count). Missing when the count or
    the divisor is missing or zero."""
    method = count_method(count)
    if count is None or not divisor:
        return Estimate(None, no_limits(levels), statistic, method)
    intervals = []
    for level in levels:
        lower, upper, _ = count_limits(count, level)
        scaled_lower = None if lower is None else lower / divisor * scale
        intervals.append(Interval(level, scaled_lower, upper / divisor * scale))
    return Estimate(count / divisor * scale, tuple(intervals), statistic, method)
