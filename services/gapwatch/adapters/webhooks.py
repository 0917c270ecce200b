"""POST alert changes to webhooks in Alertmanager's webhook receiver format (version 4).

Anything that already takes Alertmanager webhooks (chat bridges, ticketing, on-call
tools) can take gapwatch's directly, with no Alertmanager in between. One message per
change, grouped like an Alertmanager route with ``group_by: [alertname, icb]``, so
``groupKey`` and ``groupLabels`` look as they would coming from Alertmanager.

Fingerprints are Alertmanager's own: 64-bit FNV-1a over the sorted label pairs, each
name and value followed by a 0xff byte, as 16 hex digits (``prometheus/common``
``model.LabelSet.Fingerprint``), so a receiver can correlate both channels' alerts.

Webhooks get changes only: ``sync`` does nothing (Alertmanager itself re-notifies only
at its repeat interval, which gapwatch's change stream makes unnecessary).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

import aiohttp

from gapwatch.adapters.delivery import (
    GO_ZERO_TIME,
    QueuedChannel,
    RetryPolicy,
    Sender,
    generator_url,
    rfc3339,
)
from gapwatch.adapters.delivery_metrics import DeliveryMetrics
from gapwatch.core.alert_events import AlertEvent

__all__ = [
    "CHANNEL",
    "DEFAULT_GROUP_BY",
    "WebhookNotifier",
    "fingerprint",
    "group_key",
    "webhook_alert",
    "webhook_message",
]

CHANNEL: Final = "webhook"
DEFAULT_GROUP_BY: Final = ("alertname", "icb")

_FNV_OFFSET: Final = 14695981039346656037
_FNV_PRIME: Final = 1099511628211
_MASK64: Final = (1 << 64) - 1
_SEPARATOR: Final = 0xFF


def fingerprint(labels: Mapping[str, str]) -> str:
    """Alertmanager's alert fingerprint of ``labels`` (16 lower-case hex digits)."""
    h = _FNV_OFFSET
    for name in sorted(labels):
        for part in (name, labels[name]):
            for byte in (*part.encode(), _SEPARATOR):
                h = ((h ^ byte) * _FNV_PRIME) & _MASK64
    return f"{h:016x}"


def group_key(group_labels: Mapping[str, str], route_key: str = "{}") -> str:
    """Alertmanager's groupKey: the route's key, then the group's labels as
    ``{name="value", ...}`` sorted by name (``{}:{alertname="GapWidening", icb="QOP"}``)."""
    pairs = ", ".join(f"{k}={_go_quote(group_labels[k])}" for k in sorted(group_labels))
    return f"{route_key}:{{{pairs}}}"


def webhook_alert(event: AlertEvent, generator_url: str = "") -> dict[str, Any]:
    """One entry of ``alerts``; endsAt is Go's zero time while firing, as Alertmanager
    sends it, else the resolve time (``ends_ms``, else ``at_ms``)."""
    if event.firing:
        ends = GO_ZERO_TIME
    else:
        ends = rfc3339(event.ends_ms if event.ends_ms is not None else event.at_ms)
    return {
        "status": event.state,
        "labels": dict(event.labels),
        "annotations": dict(event.annotations),
        "startsAt": rfc3339(event.starts_ms),
        "endsAt": ends,
        "generatorURL": generator_url,
        "fingerprint": fingerprint(event.labels),
    }


def webhook_message(
    event: AlertEvent,
    *,
    receiver: str = "gapwatch",
    external_url: str = "",
    generator_url: str = "",
    group_by: Sequence[str] = DEFAULT_GROUP_BY,
) -> dict[str, Any]:
    """The whole webhook body for one change: a group holding this one alert."""
    group_labels = {k: event.labels[k] for k in group_by if k in event.labels}
    return {
        "version": "4",
        "groupKey": group_key(group_labels),
        "truncatedAlerts": 0,
        "status": event.state,
        "receiver": receiver,
        "groupLabels": group_labels,
        "commonLabels": dict(event.labels),
        "commonAnnotations": dict(event.annotations),
        "externalURL": external_url,
        "alerts": [webhook_alert(event, generator_url)],
    }


def _go_quote(value: str) -> str:
    """Go's strconv.Quote for the characters label values realistically hold."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


class WebhookNotifier(QueuedChannel):
    """One message per alert change to every webhook URL, each URL independently."""

    def __init__(
        self,
        urls: Sequence[str],
        *,
        metrics: DeliveryMetrics | None = None,
        receiver: str = "gapwatch",
        external_url: str = "",
        generator_url: str = "",
        group_by: Sequence[str] = DEFAULT_GROUP_BY,
        queue_size: int = 1000,
        policy: RetryPolicy | None = None,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        """``generator_url`` is a template: ``{id}`` becomes the URL-quoted alert id."""
        self.metrics = metrics or DeliveryMetrics.create()
        self.receiver = receiver
        self.external_url = external_url
        self.generator_url = generator_url
        self.group_by = tuple(group_by)
        self.sender = Sender(
            CHANNEL,
            urls,
            policy=policy or RetryPolicy(),
            metrics=self.metrics,
            queue_size=queue_size,
            session=session,
        )

    async def notify(self, event: AlertEvent) -> None:
        """Queue this change for every URL; never waits for the network."""
        self.sender.offer(
            webhook_message(
                event,
                receiver=self.receiver,
                external_url=self.external_url,
                generator_url=generator_url(self.generator_url, event),
                group_by=self.group_by,
            )
        )

    async def sync(self, firing: Sequence[AlertEvent], now_ms: int) -> None:
        """Nothing to re-send: webhooks get changes only (see the module docstring)."""
