"""Prometheus counters for alert delivery (Alertmanager v2 pushes, webhooks).

One ``DeliveryMetrics`` per process, built on the process's own ``CollectorRegistry`` and
shared by every channel: the counter can be registered only once per registry. Labels
stay bounded: the channel (``alertmanager``, ``webhook``) and the outcome, never a URL,
an ICB or a trust.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

from prometheus_client import CollectorRegistry, Counter, Gauge

__all__ = ["OUTCOMES", "DeliveryMetrics", "Outcome"]

Outcome = Literal["sent", "retried", "failed", "dropped"]
OUTCOMES: Final = ("sent", "retried", "failed", "dropped")


@dataclass(frozen=True)
class DeliveryMetrics:
    registry: CollectorRegistry
    deliveries: Counter
    """gapwatch_alert_deliveries_total{channel,outcome}: one per HTTP request's fate.
    sent: accepted (2xx); retried: a failed attempt that will be tried again; failed:
    given up (attempts exhausted or a 4xx); dropped: pushed out of a full queue."""
    queued: Gauge
    """gapwatch_alert_delivery_queue_depth{channel}: requests waiting, all URLs summed."""

    @classmethod
    def create(cls, registry: CollectorRegistry | None = None) -> DeliveryMetrics:
        r = registry or CollectorRegistry()
        return cls(
            registry=r,
            deliveries=Counter(
                "gapwatch_alert_deliveries",
                "Alert delivery requests by channel and outcome (sent, retried, failed, dropped)",
                ["channel", "outcome"],
                registry=r,
            ),
            queued=Gauge(
                "gapwatch_alert_delivery_queue_depth",
                "Alert delivery requests waiting to be sent, all URLs of the channel summed",
                ["channel"],
                registry=r,
            ),
        )

    def count(self, channel: str, outcome: Outcome, n: int = 1) -> None:
        self.deliveries.labels(channel, outcome).inc(n)

    def value(self, channel: str, outcome: Outcome) -> float:
        """The counter's current value (for tests and logs)."""
        got = self.registry.get_sample_value(
            "gapwatch_alert_deliveries_total", {"channel": channel, "outcome": outcome}
        )
        return got or 0.0
