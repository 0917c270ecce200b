"""Proportions with Wilson score limits (stats-methods §3, PHE's ``phe_proportion``).

Wilson rather than the normal approximation because it stays inside [0, 1] and behaves
at 0 and n, which matters for small areas where 0 of 40 is a routine result. The
primitives ``wilson_lower``/``wilson_upper`` are public because funnel plots and SII
inputs need the same limits without the ``Estimate`` wrapping.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Final

from gapwatch.core.errors import StatisticsError
from gapwatch.core.stats.confidence import (
    DEFAULT_LEVELS,
    Estimate,
    Interval,
    no_limits,
    normalise_level,
    normalise_levels,
    z_two_sided,
)
from gapwatch.core.stats.rate import check_multiplier, format_multiplier

__all__ = ["WILSON", "proportion", "wilson_lower", "wilson_upper"]

WILSON: Final = "Wilson"
"""PHE's ``method`` text for every proportion."""


def _check(x: float | None, n: float | None) -> None:
    """PHE's rules: x >= 0, n > 0, x <= n; a missing side is not checked (it is not an error)."""
    if x is not None and not x >= 0:  # `not >=` also rejects NaN
        raise StatisticsError(f"a proportion's numerator must be >= 0, got {x!r}")
    if n is not None and not n > 0:
        raise StatisticsError(f"a proportion's denominator must be > 0, got {n!r}")
    if x is not None and n is not None and x > n:
        raise StatisticsError(f"a proportion's numerator {x!r} exceeds its denominator {n!r}")


def _score_terms(x: float, n: float, level: float) -> tuple[float, float, float]:
    """(a, b, z^2) with a = 2x + z^2 and b = z sqrt(z^2 + 4x(1 - x/n)).

    The Wilson bounds are (a -+ b) / (2(n + z^2)).
    """
    z = z_two_sided(level)
    z2 = z * z
    return 2 * x + z2, z * math.sqrt(z2 + 4 * x * (1 - x / n)), z2


def wilson_lower(x: float, n: float, level: float) -> float:
    """Lower Wilson limit of x/n, as a proportion (no multiplier).

    Exactly 0 at x = 0 and at level 1 (where z is infinite); ``level`` may be a fraction
    or a percentage. (a - b) / (2(n + z^2)) cancels badly when x is tiny (a weighted
    count), even going negative; multiplying through by (a + b) gives the same number as
    2x(x/n) / (a + b), which has no subtraction. Both agree with PHE to ~1e-15.
    """
    _check(x, n)
    wanted = normalise_level(level)
    if x == 0 or wanted == 1:
        return 0.0
    a, b, _ = _score_terms(x, n, wanted)
    return 2 * x * (x / n) / (a + b)


def wilson_upper(x: float, n: float, level: float) -> float:
    """Upper Wilson limit of x/n, as a proportion: exactly 1 at x = n and at level 1.

    Mathematically in [x/n, 1]; the clamp absorbs rounding when x is a hair below n.
    """
    _check(x, n)
    wanted = normalise_level(level)
    if x == n or wanted == 1:
        return 1.0
    a, b, z2 = _score_terms(x, n, wanted)
    return max(min((a + b) / (2 * (n + z2)), 1.0), x / n)


def _statistic(multiplier: float) -> str:
    """PHE names a multiplier of 100 "percentage"; any other is "proportion of <m>"."""
    if multiplier == 100:
        return "percentage"
    return f"proportion of {format_multiplier(multiplier)}"


def proportion(
    x: float | None,
    n: float | None,
    levels: float | Iterable[float] = DEFAULT_LEVELS,
    multiplier: float = 1.0,
) -> Estimate:
    """x/n times ``multiplier`` with Wilson limits at each level.

    ``x`` need not be whole (weighted counts are allowed). A missing (None) numerator or
    denominator gives a missing value and limits rather than an error, as PHE does for a
    row with no data; invalid numbers raise ``StatisticsError``.
    """
    wanted = normalise_levels(levels)
    check_multiplier(multiplier)
    _check(x, n)
    statistic = _statistic(multiplier)
    if x is None or n is None:
        missing = no_limits(wanted)
        return Estimate(None, missing, statistic, WILSON)
    intervals = tuple(
        Interval(
            level,
            wilson_lower(x, n, level) * multiplier,
            wilson_upper(x, n, level) * multiplier,
        )
        for level in wanted
    )
    return Estimate(x / n * multiplier, intervals, statistic, WILSON)
