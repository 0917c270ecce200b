"""The series SPC runs on: one gap value per closed period (docs/spc.md §7).

A period (a UTC day, or an ISO week from Monday) is charted only once it has ended and
its lateness allowance has passed, so late events have settled; the period still open is
reported separately, never as a point. Each period's gap comes from that period's own
``Report`` (``core.report``): the most minus the least deprived group, their ratio, or
the SII for IMD breakdowns; a group minus the reference for ethnicity.

Which way is better for a gap follows the indicator. For an indicator where lower is
better, a larger Q1 - Q5 difference or ratio means the deprived fare worse, so
``decrease`` is improvement. The SII runs from the most to the least deprived end (PHE's
sign: docs/statistics.md), so there ``increase`` is improvement.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal

from gapwatch.core.indicators import Indicator
from gapwatch.core.inequality import EthnicGap, ImdGap
from gapwatch.core.report import Report
from gapwatch.core.spc import Direction
from gapwatch.core.windows import DAY_MS, bucket_start

__all__ = [
    "GAP_MEASURES",
    "PERIOD_MS",
    "GapPoint",
    "Period",
    "closed_periods",
    "gap_direction",
    "gap_points",
    "gap_value",
    "open_period",
    "period_start",
]

Period = Literal["day", "week"]
PERIOD_MS: Final[dict[str, int]] = {"day": DAY_MS, "week": 7 * DAY_MS}
_MONDAY_OFFSET_MS: Final = 3 * DAY_MS
"""1970-01-01 was a Thursday, 3 days after a Monday: shift by 3 days to align weeks."""

GAP_MEASURES: Final[dict[str, tuple[str, ...]]] = {
    "imd_quintile": ("difference", "ratio", "sii"),
    "imd_decile": ("difference", "ratio", "sii"),
    "ethnic_group": ("difference", "ratio"),
}
"""Breakdown -> the gap measures charted for it."""


@dataclass(frozen=True, slots=True)
class GapPoint:
    period_start_ms: int
    value: float | None
    """None when the period has no gap (e.g. a group with no population or events)."""


def period_start(ts_ms: int, period: Period) -> int:
    if period == "day":
        return bucket_start(ts_ms, DAY_MS)
    return bucket_start(ts_ms + _MONDAY_OFFSET_MS, PERIOD_MS["week"]) - _MONDAY_OFFSET_MS


def open_period(now_ms: int, period: Period) -> int:
    """Start of the period ``now`` falls in."""
    return period_start(now_ms, period)


def closed_periods(now_ms: int, period: Period, lateness_ms: int, count: int) -> list[int]:
    """Starts of the latest ``count`` periods, oldest first, whose end is at least
    ``lateness_ms`` before ``now_ms``."""
    if count < 1:
        raise ValueError("count must be at least 1")
    size = PERIOD_MS[period]
    latest = period_start(now_ms - lateness_ms, period) - size
    return [latest - i * size for i in range(count - 1, -1, -1)]


def gap_value(report: Report, measure: str, group: str | None = None) -> float | None:
    """One period's gap, by ``measure`` (see ``GAP_MEASURES``); ``group`` picks the
    ethnic group compared with the reference."""
    gap = report.gap
    if isinstance(gap, ImdGap):
        limits = {"difference": gap.absolute, "ratio": gap.ratio, "sii": gap.sii}.get(measure)
        if limits is None:
            raise ValueError(f"unknown IMD gap measure {measure!r}")
        return limits.value
    if isinstance(gap, EthnicGap):
        if measure not in ("difference", "ratio"):
            raise ValueError(f"unknown ethnic gap measure {measure!r}")
        for comparison in gap.comparisons:
            if comparison.group == group:
                chosen = comparison.difference if measure == "difference" else comparison.ratio
                return chosen.value
        raise ValueError(f"no comparison for ethnic group {group!r}")
    return None


def gap_direction(indicator: Indicator, measure: str) -> Direction:
    """Which way of the gap series is improvement (see the module docstring)."""
    if indicator.improvement == "neutral":
        return "neutral"
    narrowing: Direction = "decrease" if indicator.improvement == "lower" else "increase"
    if measure == "sii":
        return "increase" if narrowing == "decrease" else "decrease"
    return narrowing


def gap_points(
    reports: Sequence[tuple[int, Report]], measure: str, group: str | None = None
) -> list[GapPoint]:
    """The gap of each period's report, in period order."""
    return [
        GapPoint(start, gap_value(report, measure, group))
        for start, report in sorted(reports, key=lambda item: item[0])
    ]
