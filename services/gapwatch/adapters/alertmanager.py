"""Push alerts to Alertmanager through its v2 API, the way Prometheus does.

``POST /api/v2/alerts`` takes a list of postable alerts (labels, annotations, startsAt,
endsAt, generatorURL). Like Prometheus, a firing alert is sent with endsAt a lease ahead
(``lease_factor`` x the resend interval, 4 x 60 s by default) and re-sent every resend
interval, so if gapwatch dies Alertmanager resolves the alert by itself when the lease
runs out instead of showing it firing forever. A resolved alert is sent with endsAt =
its resolve time, and re-sent for ``resolved_retention_s`` (15 min, as Prometheus does),
so one lost request cannot leave it firing. Each Alertmanager URL (an HA pair is two) has
its own queue and is sent to independently; Alertmanager de-duplicates.

The alerter calls ``notify`` for each change (sent at once) and ``sync`` with the full
list of firing alerts at least once per resend interval (the re-sends are due then).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Final

import aiohttp

from gapwatch.adapters.delivery import (
    QueuedChannel,
    RetryPolicy,
    Sender,
    generator_url,
    rfc3339,
    wall_ms,
)
from gapwatch.adapters.delivery_metrics import DeliveryMetrics
from gapwatch.core.alert_events import AlertEvent

__all__ = ["API_PATH", "CHANNEL", "AlertmanagerNotifier", "alerts_url", "postable_alert"]

logger = logging.getLogger(__name__)

CHANNEL: Final = "alertmanager"
API_PATH: Final = "/api/v2/alerts"
# Prometheus' own batch limit (notifier maxBatchSize): bounds one request's size.
MAX_BATCH: Final = 256


def alerts_url(base_url: str) -> str:
    """``http://host:9093`` (or with a path prefix) -> its v2 alerts endpoint."""
    return base_url.rstrip("/") + API_PATH


def postable_alert(
    event: AlertEvent, *, now_ms: int, lease_ms: int, generator_url: str = ""
) -> dict[str, Any]:
    """One alert as Alertmanager's v2 API takes it (``postableAlert``).

    endsAt: firing -> ``now_ms + lease_ms`` (Alertmanager resolves it itself if no
    re-send arrives); resolved -> the resolve time (``ends_ms``, else ``at_ms``).
    generatorURL is left out when empty: the API validates it as a URI.
    """
    if event.firing:
        ends_ms = now_ms + lease_ms
    else:
        ends_ms = event.ends_ms if event.ends_ms is not None else event.at_ms
    alert: dict[str, Any] = {
        "labels": dict(event.labels),
        "annotations": dict(event.annotations),
        "startsAt": rfc3339(event.starts_ms),
        "endsAt": rfc3339(ends_ms),
    }
    if generator_url:
        alert["generatorURL"] = generator_url
    return alert


@dataclass(slots=True)
class _Tracked:
    event: AlertEvent
    last_sent_ms: int | None


class AlertmanagerNotifier(QueuedChannel):
    """Sends alert changes at once and re-sends what is active, to every Alertmanager."""

    def __init__(
        self,
        urls: Sequence[str],
        *,
        metrics: DeliveryMetrics | None = None,
        resend_interval_s: float = 60.0,
        lease_factor: int = 4,
        resolved_retention_s: float = 900.0,
        generator_url: str = "",
        queue_size: int = 100,
        policy: RetryPolicy | None = None,
        clock: Callable[[], int] = wall_ms,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        """``urls``: Alertmanager base URLs (``http://am:9093``). ``queue_size`` counts
        requests per URL. ``clock`` gives epoch ms for ``notify`` (``sync`` is told)."""
        if resend_interval_s <= 0 or lease_factor < 2:
            raise ValueError("resend_interval_s > 0 and lease_factor >= 2 required")
        self.metrics = metrics or DeliveryMetrics.create()
        self.resend_ms = round(resend_interval_s * 1000)
        self.lease_ms = lease_factor * self.resend_ms
        self.retention_ms = round(resolved_retention_s * 1000)
        self.generator_url = generator_url
        self._clock = clock
        self._tracked: dict[str, _Tracked] = {}
        self.sender = Sender(
            CHANNEL,
            [alerts_url(u) for u in urls],
            policy=policy or RetryPolicy(),
            metrics=self.metrics,
            queue_size=queue_size,
            session=session,
        )

    async def notify(self, event: AlertEvent) -> None:
        """Queue this change for every Alertmanager; never waits for the network."""
        now_ms = self._clock()
        self._tracked[event.id] = _Tracked(event, now_ms)
        self._send([event], now_ms)

    async def sync(self, firing: Sequence[AlertEvent], now_ms: int) -> None:
        """Re-send what is due, given every alert firing now.

        A tracked firing alert missing from ``firing`` is taken as resolved at ``now_ms``
        (as Prometheus does when a series disappears); resolved alerts are re-sent until
        ``resolved_retention_s`` after they resolved, then forgotten.
        """
        now_firing = {e.id: e for e in firing if e.firing}
        for alert_id, event in now_firing.items():
            tracked = self._tracked.get(alert_id)
            if tracked is None or not tracked.event.firing:
                self._tracked[alert_id] = _Tracked(event, None)
            else:
                tracked.event = event
        for alert_id, tracked in list(self._tracked.items()):
            event = tracked.event
            if event.firing and alert_id not in now_firing:
                resolved = replace(
                    event, change="resolved", state="resolved", ends_ms=now_ms, at_ms=now_ms
                )
                self._tracked[alert_id] = _Tracked(resolved, None)
            elif not event.firing and now_ms >= self._resolved_at(event) + self.retention_ms:
                del self._tracked[alert_id]
        due = [
            t
            for t in self._tracked.values()
            if t.last_sent_ms is None or now_ms - t.last_sent_ms >= self.resend_ms
        ]
        for tracked in due:
            tracked.last_sent_ms = now_ms
        self._send([t.event for t in due], now_ms)

    def active(self) -> list[AlertEvent]:
        """What is being re-sent: firing alerts and recently resolved ones."""
        return [t.event for t in self._tracked.values()]

    @staticmethod
    def _resolved_at(event: AlertEvent) -> int:
        return event.ends_ms if event.ends_ms is not None else event.at_ms

    def _send(self, events: Sequence[AlertEvent], now_ms: int) -> None:
        for start in range(0, len(events), MAX_BATCH):
            batch = [
                postable_alert(
                    e,
                    now_ms=now_ms,
                    lease_ms=self.lease_ms,
                    generator_url=generator_url(self.generator_url, e),
                )
                for e in events[start : start + MAX_BATCH]
            ]
            self.sender.offer(batch)
