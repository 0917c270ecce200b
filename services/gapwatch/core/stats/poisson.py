"""Confidence limits for a Poisson count O (stats-methods §2).

Byar's approximation, and the exact method through the chi-squared distribution. Crude
rates and indirectly standardised ratios use exact below 10 events and Byar from 10
(``count_limits``); DSRs always use Byar (their Dobson scaling is built on it).
"""

from __future__ import annotations

import math
from typing import Final

from scipy.stats import chi2

from gapwatch.core.errors import StatisticsError
from gapwatch.core.stats.confidence import z_two_sided

__all__ = [
    "BYAR_FROM",
    "byar_lower",
    "byar_upper",
    "count_limits",
    "exact_lower",
    "exact_upper",
]

BYAR_FROM: Final = 10
"""Counts below this use the exact method (label "Exact"), from it Byar ("Byars")."""


def _check(count: float) -> None:
    if not count >= 0:  # also rejects NaN
        raise StatisticsError(f"a count must be >= 0, got {count!r}")


def byar_lower(count: float, level: float) -> float | None:
    """Byar's lower limit; None when the approximation goes negative (tiny O, high level)."""
    _check(count)
    if count == 0:
        return 0.0
    z = z_two_sided(level)
    limit = count * (1 - 1 / (9 * count) - z / (3 * math.sqrt(count))) ** 3
    return limit if limit >= 0 else None


def byar_upper(count: float, level: float) -> float:
    """Byar's upper limit."""
    _check(count)
    z = z_two_sided(level)
    o = count + 1
    return o * (1 - 1 / (9 * o) + z / (3 * math.sqrt(o))) ** 3


def exact_lower(count: float, level: float) -> float:
    """Exact lower limit: half the chi-squared quantile at (1 - level)/2 with 2O df."""
    _check(count)
    if count == 0:
        return 0.0  # SciPy gives NaN at 0 degrees of freedom; the limit is 0.
    return float(chi2.ppf((1 - level) / 2, 2 * count)) / 2


def exact_upper(count: float, level: float) -> float:
    """Exact upper limit: half the chi-squared quantile at (1 + level)/2 with 2O + 2 df."""
    _check(count)
    return float(chi2.ppf((1 + level) / 2, 2 * count + 2)) / 2


def count_limits(count: float, level: float) -> tuple[float | None, float, str]:
    """(lower, upper, method) for a count: exact below 10 events, Byar from 10."""
    if count < BYAR_FROM:
        return exact_lower(count, level), exact_upper(count, level), "Exact"
    return byar_lower(count, level), byar_upper(count, level), "Byars"
