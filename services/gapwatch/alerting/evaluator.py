"""Which series to chart, and the alert changes charting them makes.

``charts_to_evaluate`` is the incremental part: an ICB's series are re-charted only when
one of its charted days changed, or when the set of closed periods moved on (a new day
closed, once a day). ``evaluate_icb`` charts one ICB's series with Making Data Count
SPC and turns each into the series' alert state (``core.gap_alerts``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final

from gapwatch.alerting.gap_book import GapBook
from gapwatch.core.alert_events import AlertEvent
from gapwatch.core.alert_messages import gap_event
from gapwatch.core.gap_alerts import Alert, AlertKey, evaluate
from gapwatch.core.gap_series import PERIOD_MS, Period, closed_periods, gap_direction
from gapwatch.core.indicators import CATALOGUE
from gapwatch.core.period_gaps import SeriesId
from gapwatch.core.spc import SpcOptions, spc

__all__ = ["ChartPlan", "evaluate_icb", "icbs_to_evaluate", "method_name"]


@dataclass(frozen=True, slots=True)
class ChartPlan:
    series: tuple[SeriesId, ...]
    period: Period
    starts: tuple[int, ...]
    """Starts of the closed periods charted, oldest first."""
    options: SpcOptions

    @classmethod
    def at(
        cls,
        now_ms: int,
        series: Iterable[SeriesId],
        period: Period,
        lateness_ms: int,
        count: int,
        options: SpcOptions,
    ) -> ChartPlan:
        starts = tuple(closed_periods(now_ms, period, lateness_ms, count))
        return cls(tuple(series), period, starts, options)

    @property
    def oldest_day_ms(self) -> int:
        return self.starts[0]

    @property
    def end_ms(self) -> int:
        return self.starts[-1] + PERIOD_MS[self.period]


_ADJECTIVE: Final[dict[str, str]] = {"day": "daily", "week": "weekly"}


def method_name(options: SpcOptions, period: Period) -> str:
    screening = "moving ranges screened at 3.267" if options.screen_outliers else "no screening"
    fixed = f"; limits fixed after {options.fix_after} points" if options.fix_after else ""
    return (
        f"NHS Making Data Count XmR (NHSRplotthedots 0.2.2), {_ADJECTIVE[period]} gap; "
        "two-in-three: "
        f"{options.two_in_three}; run/trend length {options.run_length}; {screening}{fixed}"
    )


def icbs_to_evaluate(
    previous: ChartPlan | None,
    plan: ChartPlan,
    changed: Mapping[str, set[int]],
    known: Iterable[str],
) -> set[str]:
    """ICBs whose charts may differ from the last evaluation."""
    if previous is None or previous.starts != plan.starts or previous.series != plan.series:
        return set(known)
    start, end = plan.oldest_day_ms, plan.end_ms
    return {icb for icb, days in changed.items() if any(start <= d < end for d in days)}


def evaluate_icb(
    book: GapBook,
    icb: str,
    icb_name: str,
    plan: ChartPlan,
    previous: Mapping[str, Alert],
    now_ms: int,
) -> tuple[list[Alert], list[AlertEvent], int]:
    """(alerts whose state changed or was refreshed, events to deliver, series charted)."""
    method = method_name(plan.options, plan.period)
    updated: list[Alert] = []
    events: list[AlertEvent] = []
    charted = 0
    for sid in plan.series:
        points = [p for p in book.series(icb, sid, plan.period, plan.starts) if p.value is not None]
        key = AlertKey(icb, sid.indicator, sid.breakdown, sid.measure)
        before = previous.get(key.id)
        indicator = CATALOGUE[sid.indicator]
        direction = gap_direction(indicator, sid.base_measure)
        if not points or direction == "neutral":
            continue
        charted += 1
        chart = spc(
            [p.value for p in points if p.value is not None], direction, options=plan.options
        )
        alert, change = evaluate(
            before, key, chart, [p.period_start_ms for p in points], now_ms, method
        )
        if alert is None:
            continue
        if alert is not before:
            updated.append(alert)
        if change is not None:
            events.append(gap_event(alert, change, now_ms, indicator.title, icb_name))
    return updated, events, charted
