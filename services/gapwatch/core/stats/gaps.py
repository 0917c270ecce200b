"""The gap between two groups: absolute difference and ratio, with confidence limits.

PHEindicatormethods has no function for this, so we use the method of variance
estimates recovery (MOVER), which builds the limits of a difference or a ratio from each
group's own limits. Fed with Wilson limits it is Newcombe's hybrid score interval for a
difference of proportions (Newcombe 1998, method 10); fed with exact/Byar Poisson or
Dobson limits it keeps their skewness for small counts, where a normal approximation on
the two standard errors would not. The ratio uses MOVER-R (Donner & Zou 2012).

- difference ``d = a - b``:
  ``lower = d - sqrt((a - a_lo)^2 + (b_hi - b)^2)``,
  ``upper = d + sqrt((a_hi - a)^2 + (b - b_lo)^2)``.
- ratio ``r = a / b`` (both positive):
  ``lower = (ab - sqrt((ab)^2 - a_lo b_hi (2a - a_lo)(2b - b_hi))) / (b_hi (2b - b_hi))``,
  ``upper = (ab + sqrt((ab)^2 - a_hi b_lo (2a - a_hi)(2b - b_lo))) / (b_lo (2b - b_lo))``.
  A limit whose formula has no real, positive solution (a group too small for its
  interval to be roughly symmetric on the ratio scale) is reported as missing rather
  than as a number that would look precise.

Both groups' limits must be at the same confidence level.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["DIFFERENCE_METHOD", "RATIO_METHOD", "GroupEstimate", "Limits", "difference", "ratio"]

DIFFERENCE_METHOD = (
    "MOVER (Zou & Donner 2008) from each group's own limits; with Wilson limits this is "
    "Newcombe's hybrid score interval"
)
RATIO_METHOD = "MOVER-R (Donner & Zou 2012) from each group's own limits"


@dataclass(frozen=True, slots=True)
class GroupEstimate:
    """One group's value and its limits at one level (a limit may be missing)."""

    value: float | None
    lower: float | None
    upper: float | None


@dataclass(frozen=True, slots=True)
class Limits:
    value: float | None
    lower: float | None
    upper: float | None


_MISSING = Limits(None, None, None)


def difference(a: GroupEstimate, b: GroupEstimate) -> Limits:
    """``a - b`` with MOVER limits; missing when either value is missing."""
    if a.value is None or b.value is None:
        return _MISSING
    d = a.value - b.value
    lower = upper = None
    if a.lower is not None and b.upper is not None:
        lower = d - math.hypot(a.value - a.lower, b.upper - b.value)
    if a.upper is not None and b.lower is not None:
        upper = d + math.hypot(a.upper - a.value, b.value - b.lower)
    return Limits(d, lower, upper)


def ratio(a: GroupEstimate, b: GroupEstimate) -> Limits:
    """``a / b`` with MOVER-R limits; missing when ``b`` is not positive."""
    if a.value is None or b.value is None or b.value <= 0 or a.value < 0:
        return _MISSING
    r = a.value / b.value
    if a.value == 0:
        # Nothing in group a: the ratio is 0 and its upper limit comes from a's upper limit
        # over b's lower limit (the MOVER-R formula degenerates at a = 0).
        upper = a.upper / b.lower if a.upper is not None and b.lower else None
        return Limits(0.0, 0.0, upper)
    return Limits(
        r,
        _ratio_limit(a.value, b.value, a.lower, b.upper, -1.0),
        _ratio_limit(a.value, b.value, a.upper, b.lower, 1.0),
    )


def _ratio_limit(
    a: float, b: float, a_lim: float | None, b_lim: float | None, sign: float
) -> float | None:
    if a_lim is None or b_lim is None:
        return None
    ab = a * b
    denominator = b_lim * (2 * b - b_lim)
    discriminant = ab * ab - a_lim * b_lim * (2 * a - a_lim) * (2 * b - b_lim)
    if denominator <= 0 or discriminant < 0:
        return None
    limit = (ab + sign * math.sqrt(discriminant)) / denominator
    return limit if limit >= 0 else None
