"""Where alert changes go. Each channel queues and sends on its own, so a slow or down
receiver never holds up evaluation (and evaluation never holds up ingest: the alerter
is its own process, reading what the workers wrote)."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from typing import Protocol

from confluent_kafka import KafkaError, Producer
from prometheus_client import CollectorRegistry

from gapwatch.adapters.alertmanager import AlertmanagerNotifier
from gapwatch.adapters.delivery import RetryPolicy
from gapwatch.adapters.delivery_metrics import DeliveryMetrics
from gapwatch.adapters.webhooks import WebhookNotifier
from gapwatch.core.alert_events import AlertEvent
from gapwatch.settings import Settings

__all__ = ["AlertChannel", "KafkaAlerts", "build_channels"]

logger = logging.getLogger(__name__)


class AlertChannel(Protocol):
    async def notify(self, event: AlertEvent) -> None:
        """Queue one change for delivery; returns at once."""
        ...

    async def sync(self, firing: Sequence[AlertEvent], now_ms: int) -> None:
        """The alerts firing now (channels that re-send, like Alertmanager's, use it)."""
        ...

    async def run(self) -> None:
        """Send what is queued until closed (started as a task beside the loop)."""
        ...

    async def close(self) -> None: ...


def build_channels(settings: Settings, registry: CollectorRegistry) -> list[AlertChannel]:
    """The channels the settings ask for: always the Kafka topic; Alertmanager and
    webhooks when URLs are configured."""
    a = settings.alerts
    link = a.external_url.rstrip("/") + "/v1/alerts?id={id}"
    channels: list[AlertChannel] = [
        KafkaAlerts(settings.kafka.bootstrap, settings.kafka.alerts_topic)
    ]
    metrics = DeliveryMetrics.create(registry)
    if a.alertmanager_urls:
        channels.append(
            AlertmanagerNotifier(a.alertmanager_urls, metrics=metrics, generator_url=link)
        )
    if a.webhook_urls:
        channels.append(
            WebhookNotifier(
                a.webhook_urls,
                metrics=metrics,
                external_url=a.external_url,
                generator_url=link,
                policy=RetryPolicy(max_attempts=a.webhook_attempts),
            )
        )
    return channels


class KafkaAlerts:
    """Every change to the topic ``gapwatch.alerts.v1`` as JSON, keyed by alert id, so a
    consumer sees each alert's changes in order (one partition)."""

    name = "kafka"

    def __init__(self, bootstrap: str, topic: str) -> None:
        self._topic = topic
        self._producer = Producer(
            {
                "bootstrap.servers": bootstrap,
                "enable.idempotence": True,
                "linger.ms": 50,
                # Keep trying for a long while, in the background: an unreachable broker
                # delays alert messages, never the evaluation.
                "delivery.timeout.ms": 600_000,
            }
        )
        self.delivered = 0
        self.failed = 0

    async def notify(self, event: AlertEvent) -> None:
        value = json.dumps(event.as_json(), separators=(",", ":")).encode()
        try:
            self._producer.produce(self._topic, value, event.id.encode(), on_delivery=self._done)
        except BufferError:
            self.failed += 1
            logger.warning("alert topic queue full; change dropped id=%s", event.id)
        self._producer.poll(0)

    def _done(self, err: KafkaError | None, _: object) -> None:
        if err is None:
            self.delivered += 1
        else:
            self.failed += 1
            logger.warning("alert not delivered to kafka: %s", err)

    async def sync(self, firing: Sequence[AlertEvent], now_ms: int) -> None:
        self._producer.poll(0)

    async def run(self) -> None:
        # Delivery reports arrive through poll(); serve them while idle too.
        while True:
            self._producer.poll(0)
            await asyncio.sleep(0.5)

    async def close(self) -> None:
        self._producer.flush(10)
