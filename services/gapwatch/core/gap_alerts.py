"""When a gap widens for a reason that is not noise: alert state, one series at a time.

A series (ICB x indicator x breakdown x measure) fires when its latest closed point is a
special cause in the concerning direction and its limits are not trial limits (fewer
than 13 points: docs/spc.md §5). It stays firing while that holds, and is resolved when
the latest point is common cause again (or an improvement). Pure: the previous state and
the new chart come in; the new state and what changed (for delivery) go out. Only a new
alert, a change of rule on a firing alert, and a resolution are changes, so a run of
concerning points does not re-alert every period.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

from gapwatch.core.spc import SpcPoint, SpcResult

__all__ = ["Alert", "AlertKey", "Change", "Evidence", "evaluate"]

State = Literal["firing", "resolved"]
Change = Literal["new", "updated", "resolved"]


@dataclass(frozen=True, slots=True)
class AlertKey:
    icb: str
    indicator: str
    breakdown: str
    measure: str

    @property
    def id(self) -> str:
        """Stable across restarts and re-evaluations: the same series, the same id."""
        return f"gap:{self.icb}:{self.indicator}:{self.breakdown}:{self.measure}"


@dataclass(frozen=True, slots=True)
class Evidence:
    period_start_ms: int
    value: float
    mean: float
    lpl: float
    upl: float
    point_type: str
    rule: str


@dataclass(frozen=True, slots=True)
class Alert:
    key: AlertKey
    state: State
    rule: str
    """The special-cause label of the latest point when it last fired."""
    method: str
    """The SPC variant, e.g. "NHSRplotthedots 0.2.2 (two-in-three: band; screened)"."""
    first_seen_ms: int
    last_seen_ms: int
    resolved_ms: int | None
    evidence: tuple[Evidence, ...]
    """The latest points of the current period, with their limits and types."""

    @property
    def id(self) -> str:
        return self.key.id


def evaluate(
    previous: Alert | None,
    key: AlertKey,
    chart: SpcResult,
    period_starts: Sequence[int],
    now_ms: int,
    method: str,
    evidence_points: int = 13,
) -> tuple[Alert | None, Change | None]:
    """The series' alert after this evaluation, and the change to deliver (if any)."""
    if len(period_starts) != len(chart.points):
        raise ValueError("one period start per charted point")
    if not chart.points:
        return previous, None
    latest = chart.points[-1]
    concern = latest.point_type == "special_cause_concern" and not latest.limits.trial
    evidence = _evidence(chart.points, period_starts, evidence_points)
    if concern:
        if previous is None or previous.state == "resolved":
            alert = Alert(
                key, "firing", latest.special_cause, method, now_ms, now_ms, None, evidence
            )
            return alert, "new"
        changed = previous.rule != latest.special_cause
        alert = replace(previous, rule=latest.special_cause, last_seen_ms=now_ms, evidence=evidence)
        return alert, "updated" if changed else None
    if previous is not None and previous.state == "firing":
        alert = replace(previous, state="resolved", resolved_ms=now_ms, evidence=evidence)
        return alert, "resolved"
    return previous, None


def _evidence(
    points: Sequence[SpcPoint], starts: Sequence[int], count: int
) -> tuple[Evidence, ...]:
    latest_period = points[-1].period
    chosen = [
        (start, p) for start, p in zip(starts, points, strict=True) if p.period == latest_period
    ][-count:]
    return tuple(
        Evidence(
            start,
            p.value,
            p.limits.mean,
            p.limits.lpl,
            p.limits.upl,
            p.point_type,
            p.special_cause,
        )
        for start, p in chosen
    )
