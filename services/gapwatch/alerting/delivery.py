"""The channels the settings ask for, built in one place."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from gapwatch.alerting.channels import AlertChannel, KafkaAlerts
from gapwatch.settings import Settings

__all__ = ["build_channels"]


def build_channels(settings: Settings, registry: CollectorRegistry) -> list[AlertChannel]:
    channels: list[AlertChannel] = [
        KafkaAlerts(settings.kafka.bootstrap, settings.kafka.alerts_topic)
    ]
    return channels
