"""Test oracle: NHSRplotthedots 0.2.2's XmR computation for one series (no facets),
re-derived literally from the package's R sources, vector by vector.

Written from (https://github.com/nhs-r-community/NHSRplotthedots; read, not copied):

- ``R/ptd_spc.R``: ``ptd_spc.data.frame`` (value promoted to double, improvement
  direction to 1 / 0 / -1, then the pipeline below);
- ``R/ptd_add_rebase_column.R``: ``ptd_add_rebase_column`` (1 on a rebase date, else 0);
- ``R/ptd_spc_standard.R`` (commit 8aac323): ``ptd_spc_standard`` (``rebase_group``
  as the cumulative sum of ``rebase``; ``fix_y``, ``mean_col``, ``mr``, ``amr``, the
  one-pass outlier screen, ``lpl``/``upl``, ``nlpl``/``nupl``, ``outside_limits``,
  ``relative_to_mean``, ``close_to_limits``);
- ``R/ptd_calculate_point_type.R`` (commit f7891af): ``ptd_calculate_point_type``,
  ``ptd_special_cause_type``, ``ptd_seven_point_one_side_mean``,
  ``ptd_part_of_seven_trend``, ``ptd_seven_point_trend``, ``ptd_two_in_three``,
  ``ptd_part_of_two_in_three`` and ``ptd_point_type``;
- ``R/ptd_add_short_group_warnings.R``: ``ptd_add_short_group_warnings``
  (threshold option ``ptd_spc.warning_threshold``, default 13);
- ``R/ptd_spc_options.R``: ``ptd_spc_options`` (``fix_after_n_points`` >= 12).

Why a second implementation: ``gapwatch.core.spc`` is written for clarity and speed;
this one is written for fidelity, keeping R's shapes (1-based padding, ``NA``
three-valued logic, ``vapply`` windows, ``case_when`` order) so that a reviewer can put
it side by side with the R code. It must never import ``gapwatch``.

Two points where Python and R arithmetic could differ are handled explicitly:

- R's ``mean()`` sums in long double and adds a second-pass correction; the result is,
  in all but contrived cases, the exactly rounded mean. ``r_mean`` computes that exactly
  rounded mean with rationals.
- ``NA`` is ``None`` in the logical vectors and ``nan`` in the double ones; R's ``&``,
  ``|``, ``!`` and ``case_when`` (``NA`` condition = not matched) are emulated.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

__all__ = [
    "LIMIT",
    "LIMITCLOSE",
    "SCREEN",
    "PtdRow",
    "ptd_point_type",
    "ptd_spc",
    "ptd_special_cause_type",
    "ptd_seven_point_one_side_mean",
    "ptd_part_of_seven_trend",
    "ptd_seven_point_trend",
    "ptd_two_in_three",
    "ptd_part_of_two_in_three",
    "r_mean",
]

LIMIT = 2.66
"""``limit`` in ptd_spc_standard."""
LIMITCLOSE = 2 * (LIMIT / 3)
"""``limitclose <- 2 * (limit / 3)`` in ptd_spc_standard (the same double as R's)."""
SCREEN = 3.267
"""The literal in ptd_spc_standard's screen: a range is kept when ``mr < 3.267 * amr``."""
WARNING_THRESHOLD = 13
"""``getOption("ptd_spc.warning_threshold", 13)`` in ptd_add_short_group_warnings."""

Lgl = bool | None
"""An R logical: TRUE, FALSE or NA (None)."""

IMPROVEMENT_DIRECTION = {"increase": 1, "neutral": 0, "decrease": -1}
"""The ``switch()`` in ptd_spc.data.frame."""


@dataclass(frozen=True, slots=True)
class PtdRow:
    """One row of ``ptd_spc()``'s data frame (plus the intermediate columns that
    ``ptd_spc_standard`` computes and then drops: ``amr``, ``nlpl``, ``nupl``)."""

    y: float
    rebase_group: int
    short_group_warning: bool
    fix_y: float
    mean_col: float
    amr: float
    lpl: float
    upl: float
    nlpl: float
    nupl: float
    outside_limits: Lgl
    relative_to_mean: float
    close_to_limits: Lgl
    special_cause_type: str
    special_cause_flag: bool
    point_type: str


# --- R arithmetic helpers ------------------------------------------------------------


def r_mean(xs: Sequence[float]) -> float:
    """``mean(x, na.rm = TRUE)``: NaN (R's NA here) dropped; empty gives NaN. R's long
    double two-pass mean is emulated by the exactly rounded mean of the doubles."""
    kept = [x for x in xs if not math.isnan(x)]
    if not kept:
        return math.nan
    total = sum((Fraction(x) for x in kept), Fraction(0))
    return float(total / len(kept))


def r_sign(x: float) -> float:
    """``sign()``: -1, 0 or 1 as a double (NaN stays NaN)."""
    if math.isnan(x):
        return math.nan
    return float((x > 0) - (x < 0))


def r_gt(a: float, b: float) -> Lgl:
    return None if math.isnan(a) or math.isnan(b) else a > b


def r_lt(a: float, b: float) -> Lgl:
    return None if math.isnan(a) or math.isnan(b) else a < b


def r_or(a: Lgl, b: Lgl) -> Lgl:
    if a is True or b is True:
        return True
    if a is None or b is None:
        return None
    return False


def r_and(a: Lgl, b: Lgl) -> Lgl:
    if a is False or b is False:
        return False
    if a is None or b is None:
        return None
    return True


def r_not(a: Lgl) -> Lgl:
    return None if a is None else not a


def _num(a: Lgl | float) -> float:
    """A logical (or number) used in arithmetic, or stored by ``vapply(..., numeric(1))``:
    NA becomes NaN."""
    if a is None:
        return math.nan
    return float(a)


def _r_sum(xs: Sequence[float]) -> float:
    """``sum()``: NA propagates (no ``na.rm``)."""
    return math.nan if any(math.isnan(x) for x in xs) else float(sum(xs))


def _ge(a: float, b: float) -> Lgl:
    return None if math.isnan(a) else a >= b


def _eq(a: float, b: float) -> Lgl:
    return None if math.isnan(a) or math.isnan(b) else a == b


def _r_oror(a: Lgl, b: Lgl) -> Lgl:
    """R's scalar ``||`` (TRUE if either is TRUE, else NA if either is NA)."""
    return r_or(a, b)


# --- ptd_calculate_point_type.R helpers, one per R function ----------------------------


def ptd_seven_point_one_side_mean(v: Sequence[float]) -> list[float]:
    """1 where the point and the 6 before it have the same non-zero ``relative_to_mean``
    (the vector is padded with six 0 at the start)."""
    vp = [0.0] * 6 + list(v)
    out = []
    for i in range(6, len(vp)):  # R: seq_along(v) + 6, 1-based
        same = all(vp[i] == vp[i - k] for k in range(1, 7))
        out.append(float(same and vp[i] != 0))
    return out


def ptd_part_of_seven_trend(v: Sequence[float]) -> list[float]:
    """1 where this point or one of the next 6 has ``abs(v) == 1`` (padded with six 0 at
    the end)."""
    vp = list(v) + [0.0] * 6
    return [float(any(abs(vp[i + k]) == 1 for k in range(7))) for i in range(len(v))]


def ptd_seven_point_trend(y: Sequence[float]) -> list[float]:
    """+1 (-1) where the point ends 7 points each strictly above (below) the previous:
    ``sign(diff(y[i - 0:6])) * -1`` all 1 (all -1). Fewer than 7 points: all 0."""
    n = len(y)
    if n < 7:
        return [0.0] * n
    out = [0.0] * 6
    for i in range(6, n):
        window = [y[i - k] for k in range(7)]  # y[i], y[i-1], ..., y[i-6]
        d = [r_sign(window[k + 1] - window[k]) * -1 for k in range(6)]
        if all(x == 1 for x in d):
            out.append(1.0)
        elif all(x == -1 for x in d):
            out.append(-1.0)
        else:
            out.append(0.0)
    return out


def ptd_two_in_three(v: Sequence[Lgl | float], rtm: Sequence[float]) -> list[float]:
    """For each point, whether any of the three windows of 3 containing it has at least 2
    ``close_to_limits`` and all 3 on one side of the mean (``abs(sum(rtm)) == 3``).
    Both vectors are padded with two 0 at each end (an index past the end of a shorter
    ``rtm`` reads NA, as in R). NA propagates as R's ``sum``, ``&`` and ``||`` do; the
    result is stored as a double (NaN for NA), as ``vapply(..., numeric(1))`` does."""
    if len(v) == 0:
        return []
    vp = [0.0, 0.0, *(_num(x) for x in v), 0.0, 0.0]
    rp = [0.0, 0.0, *rtm, 0.0, 0.0]
    rp += [math.nan] * (len(vp) - len(rp))

    def window(i: int, first: int) -> Lgl:
        offsets = range(first, first + 3)  # R's i + 0:2, i + 1:3, i + 2:4
        close = _ge(_r_sum([vp[i + k] for k in offsets]), 2)
        side = _r_sum([rp[i + k] for k in offsets])
        return r_and(close, None if math.isnan(side) else abs(side) == 3)

    return [_num(_r_oror(_r_oror(window(i, 0), window(i, 1)), window(i, 2))) for i in range(len(v))]


def ptd_part_of_two_in_three(v: Sequence[float], x: Sequence[Lgl | float]) -> list[float]:
    """``as.numeric(v == 1 & abs(x) == 1)``: only the close-to-limit points of a hit."""
    return [_num(r_and(_eq(vi, 1), _eq(abs(_num(xi)), 1))) for vi, xi in zip(v, x, strict=True)]


def _case_true(cond: Lgl | float) -> bool:
    """``case_when``: an NA condition does not match."""
    if cond is None:
        return False
    if isinstance(cond, float):
        return not math.isnan(cond) and cond != 0
    return cond


def ptd_special_cause_type(
    y: Sequence[float],
    relative_to_mean: Sequence[float],
    close_to_limits: Sequence[Lgl],
    outside_limits: Sequence[Lgl | float],
) -> list[str]:
    """Each point's label: outside limits, then trend, then two in three, then shift
    (``case_when`` order), else "Common Cause"."""
    n = len(y)
    part_trend = ptd_part_of_seven_trend(ptd_seven_point_trend(y))
    part_two_in_three = ptd_part_of_two_in_three(
        ptd_two_in_three(close_to_limits, relative_to_mean), close_to_limits
    )
    part_shift = ptd_part_of_seven_trend(ptd_seven_point_one_side_mean(relative_to_mean))

    sdy = [r_sign(y[i + 1] - y[i]) for i in range(n - 1)]  # sign(diff(y))
    # "if a point is part of a trend either side, use right side":
    # ifelse(c(part[-1], 0) & part, c(sdy, tail(sdy, 1)), c(0, sdy))
    right = sdy + sdy[-1:]
    left = [0.0, *sdy]
    nxt = [*part_trend[1:], 0.0]
    slope = [right[i] if (nxt[i] and part_trend[i]) else left[i] for i in range(n)]

    labels = []
    for i in range(n):
        above_or_below = "Above" if relative_to_mean[i] > 0 else "Below"
        outside = outside_limits[i]
        if _case_true(None if outside is None else _num(outside) != 0):
            labels.append("Above UCL" if relative_to_mean[i] == 1 else "Below LCL")
        elif _case_true(part_trend[i]):
            labels.append(f"7 Point Trend ({'In' if slope[i] == 1 else 'De'}creasing)")
        elif _case_true(part_two_in_three[i]):
            labels.append(f"2 in 3 {above_or_below} CL")
        elif _case_true(part_shift[i]):
            labels.append(f"7 Points {above_or_below} CL")
        else:
            labels.append("Common Cause")
    return labels


def ptd_point_type(special_cause_type: str, improvement_direction: int) -> str:
    """The label oriented by the improvement direction (1, 0 or -1)."""
    if "Above" in special_cause_type or "Increasing" in special_cause_type:
        v = 1
    elif "Below" in special_cause_type or "Decreasing" in special_cause_type:
        v = -1
    else:
        v = 0
    if improvement_direction == 0:
        return {1: "special_cause_neutral_high", -1: "special_cause_neutral_low"}.get(
            v, "common_cause"
        )
    v *= improvement_direction
    return {1: "special_cause_improvement", -1: "special_cause_concern"}.get(v, "common_cause")


# --- ptd_spc_standard.R, per rebase group ------------------------------------------------


@dataclass(frozen=True, slots=True)
class _GroupColumns:
    fix_y: list[float]
    mean_col: float
    amr: float
    lpl: float
    upl: float
    nlpl: float
    nupl: float
    outside_limits: list[Lgl]
    relative_to_mean: list[float]
    close_to_limits: list[Lgl]


def _spc_standard_group(
    y: Sequence[float], fix_after_n_points: int | None, screen_outliers: bool
) -> _GroupColumns:
    fix = math.inf if fix_after_n_points is None else fix_after_n_points
    fix_y = [v if (i + 1) <= fix else math.nan for i, v in enumerate(y)]  # row_number()
    mean_col = r_mean(fix_y)
    mr = [math.nan, *(abs(b - a) for a, b in zip(fix_y, fix_y[1:], strict=False))]
    amr = r_mean(mr)
    # case_when(!screen ~ mr, mr < 3.267 * amr ~ mr, TRUE ~ NA): NA conditions fall through
    mr = [m if (not screen_outliers or r_lt(m, SCREEN * amr) is True) else math.nan for m in mr]
    amr = r_mean(mr)
    lpl = mean_col - (LIMIT * amr)
    upl = mean_col + (LIMIT * amr)
    nlpl = mean_col - (LIMITCLOSE * amr)
    nupl = mean_col + (LIMITCLOSE * amr)
    outside = [r_or(r_gt(v, upl), r_lt(v, lpl)) for v in y]
    rtm = [r_sign(v - mean_col) for v in y]
    close = [
        r_and(r_not(o), r_or(r_lt(v, nlpl), r_gt(v, nupl))) for v, o in zip(y, outside, strict=True)
    ]
    return _GroupColumns(fix_y, mean_col, amr, lpl, upl, nlpl, nupl, outside, rtm, close)


def ptd_spc(
    y: Sequence[float],
    *,
    rebase: Sequence[bool] | None = None,
    fix_after_n_points: int | None = None,
    improvement_direction: str = "increase",
    screen_outliers: bool = True,
    warning_threshold: int = WARNING_THRESHOLD,
) -> list[PtdRow]:
    """``ptd_spc(.data, value_field, date_field, rebase, fix_after_n_points,
    improvement_direction, screen_outliers)`` for data already in date order, one facet.
    ``rebase[i]`` marks point i's date as a rebase date."""
    if fix_after_n_points is not None and fix_after_n_points < 12:
        raise ValueError("fix_after_n_points must be a single numeric >= 12")  # spc_options
    direction = IMPROVEMENT_DIRECTION[improvement_direction]
    values = [float(v) for v in y]  # as.double()
    flags = [0] * len(values) if rebase is None else [int(bool(r)) for r in rebase]
    if len(flags) != len(values):
        raise ValueError("one rebase flag per value")
    groups: list[int] = []
    total = 0
    for f in flags:  # cumsum(rebase)
        total += f
        groups.append(total)

    rows: list[PtdRow] = []
    for group in sorted(set(groups)):
        idx = [i for i, g in enumerate(groups) if g == group]
        gy = [values[i] for i in idx]
        cols = _spc_standard_group(gy, fix_after_n_points, screen_outliers)
        types = ptd_special_cause_type(
            gy, cols.relative_to_mean, cols.close_to_limits, cols.outside_limits
        )
        short = len(gy) < warning_threshold
        for k in range(len(gy)):
            rows.append(
                PtdRow(
                    y=gy[k],
                    rebase_group=group,
                    short_group_warning=short,
                    fix_y=cols.fix_y[k],
                    mean_col=cols.mean_col,
                    amr=cols.amr,
                    lpl=cols.lpl,
                    upl=cols.upl,
                    nlpl=cols.nlpl,
                    nupl=cols.nupl,
                    outside_limits=cols.outside_limits[k],
                    relative_to_mean=cols.relative_to_mean[k],
                    close_to_limits=cols.close_to_limits[k],
                    special_cause_type=types[k],
                    special_cause_flag=types[k] != "Common Cause",
                    point_type=ptd_point_type(types[k], direction),
                )
            )
    return rows
