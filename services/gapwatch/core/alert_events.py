"""What every alert channel delivers: one change to one alert, channel-neutral.

Gap alerts (``core.gap_alerts``) and stale-feed alerts (``core.feed_staleness``) both
become an ``AlertEvent``: a stable id, the change (new, updated, resolved), the state,
Prometheus-style labels and annotations, and the alert's full JSON as detail. The
channels (SSE, webhooks in Alertmanager's webhook format, Alertmanager's v2 API, the
Kafka topic ``gapwatch.alerts.v1``, the ``gapwatch_gap_alert`` gauge) only translate it.

Labels are what receivers group and route on, so they are few and bounded: the alert
name, the ICB, the indicator, the breakdown and the measure (gap alerts), or the trust
and its ICB (stale feeds). Everything else is an annotation or in ``detail``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final, Literal

__all__ = ["ALERT_NAMES", "AlertEvent", "Change", "State"]

Change = Literal["new", "updated", "resolved"]
State = Literal["firing", "resolved"]

ALERT_NAMES: Final = ("GapWidening", "FeedStale")


@dataclass(frozen=True, slots=True)
class AlertEvent:
    id: str
    """Stable: "gap:<icb>:<indicator>:<breakdown>:<measure>" or "feed:<trust>"."""
    change: Change
    state: State
    labels: dict[str, str]
    """alertname (one of ALERT_NAMES), severity, and icb/indicator/breakdown/measure or
    trust/icb. Values are strings, as Alertmanager requires."""
    annotations: dict[str, str]
    """summary, description, rule, method, ... (free text for people)."""
    starts_ms: int
    """When the alert first fired (epoch ms)."""
    ends_ms: int | None
    """When it was resolved; None while firing."""
    at_ms: int
    """When this change was decided."""
    detail: dict[str, Any] = field(default_factory=dict)
    """The alert as JSON (evidence points and limits, usual gap, ...)."""

    @property
    def firing(self) -> bool:
        return self.state == "firing"

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "change": self.change,
            "state": self.state,
            "labels": dict(self.labels),
            "annotations": dict(self.annotations),
            "starts_ms": self.starts_ms,
            "ends_ms": self.ends_ms,
            "at_ms": self.at_ms,
            "detail": self.detail,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AlertEvent:
        return cls(
            id=str(data["id"]),
            change=data["change"],
            state=data["state"],
            labels={str(k): str(v) for k, v in data["labels"].items()},
            annotations={str(k): str(v) for k, v in data["annotations"].items()},
            starts_ms=int(data["starts_ms"]),
            ends_ms=None if data.get("ends_ms") is None else int(data["ends_ms"]),
            at_ms=int(data["at_ms"]),
            detail=dict(data.get("detail") or {}),
        )
