"""The alerter's Prometheus metrics.

``gapwatch_gap_alert`` carries ICB, indicator, breakdown and measure labels: unlike the
ingest and API metrics, these are the alert's identity (as Prometheus's own ``ALERTS``
series carries its labels), bounded by ICBs x configured series.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from gapwatch.core.alert_events import AlertEvent

__all__ = ["AlerterMetrics"]


@dataclass(frozen=True)
class AlerterMetrics:
    registry: CollectorRegistry
    gap_alert: Gauge
    feed_stale: Gauge
    last_evaluation: Gauge
    evaluation_seconds: Histogram
    series_charted: Counter
    days_read: Counter
    changes: Counter

    @classmethod
    def create(cls) -> AlerterMetrics:
        r = CollectorRegistry()
        return cls(
            registry=r,
            gap_alert=Gauge(
                "gapwatch_gap_alert",
                "1 while an inequality-gap alert fires, 0 once resolved",
                ["icb", "indicator", "breakdown", "measure"],
                registry=r,
            ),
            feed_stale=Gauge(
                "gapwatch_feed_stale",
                "1 while a trust's feed is stale (silent far beyond its usual gap)",
                ["trust", "icb"],
                registry=r,
            ),
            last_evaluation=Gauge(
                "gapwatch_alerter_last_evaluation_timestamp_seconds",
                "When the alerter last finished an evaluation cycle",
                registry=r,
            ),
            evaluation_seconds=Histogram(
                "gapwatch_alerter_evaluation_seconds",
                "Time per evaluation cycle",
                buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
                registry=r,
            ),
            series_charted=Counter(
                "gapwatch_alerter_series_charted_total",
                "Gap series charted (only series whose days changed are re-charted)",
                registry=r,
            ),
            days_read=Counter(
                "gapwatch_alerter_days_read_total",
                "Day buckets (ICB x day) read from Redis",
                registry=r,
            ),
            changes=Counter(
                "gapwatch_alert_changes_total",
                "Alert changes decided",
                ["alertname", "change"],
                registry=r,
            ),
        )

    def record(self, event: AlertEvent) -> None:
        self.show(event)
        self.changes.labels(event.labels["alertname"], event.change).inc()

    def show(self, event: AlertEvent) -> None:
        """Set the alert's gauge to its state (also used to restore them at start)."""
        labels = event.labels
        value = 1.0 if event.firing else 0.0
        if labels["alertname"] == "GapWidening":
            self.gap_alert.labels(
                labels["icb"], labels["indicator"], labels["breakdown"], labels["measure"]
            ).set(value)
        else:
            self.feed_stale.labels(labels["trust"], labels["icb"]).set(value)
