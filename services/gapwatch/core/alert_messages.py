"""Gap and stale-feed alerts as ``AlertEvent``s: labels to route on, words for people.

Labels stay few and bounded (what an ICS team groups, silences and routes by); the
summary says in plain English what happened and the evidence rides in ``detail``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from gapwatch.core.alert_events import AlertEvent, Change
from gapwatch.core.feed_staleness import FeedState
from gapwatch.core.gap_alerts import Alert

__all__ = ["MEASURE_NAMES", "feed_event", "gap_event"]

MEASURE_NAMES = {
    "difference": "gap (most minus least deprived)",
    "ratio": "ratio (most over least deprived)",
    "sii": "slope index of inequality",
}
_BREAKDOWN_NAMES = {
    "imd_quintile": "IMD quintile",
    "imd_decile": "IMD decile",
    "ethnic_group": "ethnic group",
}


def _day(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d")


def _measure_name(breakdown: str, measure: str) -> str:
    base, _, group = measure.partition(":")
    if group:
        word = "difference" if base == "difference" else "ratio"
        return f"{group} vs reference group {word}"
    return MEASURE_NAMES.get(base, base)


def gap_event(
    alert: Alert, change: Change, at_ms: int, indicator_title: str, icb_name: str
) -> AlertEvent:
    key = alert.key
    latest = alert.evidence[-1] if alert.evidence else None
    breakdown = _BREAKDOWN_NAMES.get(key.breakdown, key.breakdown)
    what = f"{indicator_title}, {_measure_name(key.breakdown, key.measure)} by {breakdown}"
    if alert.state == "firing" and latest is not None:
        summary = (
            f"Inequality gap widening in {icb_name}: {what}. Period starting "
            f"{_day(latest.period_start_ms)}: {latest.value:.4g} ({alert.rule}; centre "
            f"{latest.mean:.4g}, limits {latest.lpl:.4g} to {latest.upl:.4g})."
        )
    else:
        summary = f"Resolved in {icb_name}: {what} is back to common-cause variation."
    detail: dict[str, Any] = {
        "kind": "gap",
        "rule": alert.rule,
        "method": alert.method,
        "first_seen_ms": alert.first_seen_ms,
        "last_seen_ms": alert.last_seen_ms,
        "resolved_ms": alert.resolved_ms,
        "evidence": [
            {
                "period_start_ms": e.period_start_ms,
                "value": e.value,
                "mean": e.mean,
                "lpl": e.lpl,
                "upl": e.upl,
                "point_type": e.point_type,
                "rule": e.rule,
            }
            for e in alert.evidence
        ],
    }
    return AlertEvent(
        id=alert.id,
        change=change,
        state=alert.state,
        labels={
            "alertname": "GapWidening",
            "severity": "warning",
            "icb": key.icb,
            "indicator": key.indicator,
            "breakdown": key.breakdown,
            "measure": key.measure,
        },
        annotations={
            "summary": summary,
            "description": (
                f"NHS Making Data Count SPC on the daily {what} for {icb_name}: a special "
                f"cause in the concerning direction on the latest closed period."
            ),
            "rule": alert.rule,
            "method": alert.method,
            "icb_name": icb_name,
            "indicator_title": indicator_title,
        },
        starts_ms=alert.first_seen_ms,
        ends_ms=alert.resolved_ms if alert.state == "resolved" else None,
        at_ms=at_ms,
        detail=detail,
    )


def feed_event(
    state: FeedState,
    change: Change,
    at_ms: int,
    trust_name: str,
    icb: str,
    multiple: float,
) -> AlertEvent:
    usual_s = None if state.usual_gap_ms is None else state.usual_gap_ms / 1000
    silent_min = state.silent_ms / 60_000
    if state.state == "firing":
        summary = (
            f"Feed from {trust_name} ({state.trust}) silent for {silent_min:.0f} min, over "
            f"{multiple:g} times its usual gap between events ({usual_s or 0:.0f} s)."
        )
    else:
        summary = f"Feed from {trust_name} ({state.trust}) is sending events again."
    first = state.first_seen_ms if state.first_seen_ms is not None else at_ms
    return AlertEvent(
        id=state.alert_id,
        change=change,
        state="firing" if state.state == "firing" else "resolved",
        labels={"alertname": "FeedStale", "severity": "warning", "trust": state.trust, "icb": icb},
        annotations={
            "summary": summary,
            "description": "A trust's event feed has gone quiet for much longer than usual; "
            "its counts and gaps will be understated until it catches up.",
            "trust_name": trust_name,
        },
        starts_ms=first,
        ends_ms=state.resolved_ms if state.state == "resolved" else None,
        at_ms=at_ms,
        detail={
            "kind": "feed",
            "usual_gap_s": usual_s,
            "silent_s": state.silent_ms / 1000,
            "multiple": multiple,
        },
    )
