"""Prometheus metrics for the ingest worker and the API.

Each process builds its metrics on its own ``CollectorRegistry`` (no global default
registry), so tests can create as many as they like. Labels stay bounded: partition,
reason, route; never a trust, person or ICB.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from gapwatch.core.reconcile import KINDS, PartitionBalance

__all__ = ["CONTENT_TYPE_LATEST", "ApiMetrics", "IngestMetrics", "render"]

# Chunk processing: a 100k-event chunk takes ~1-3 s; a trickle chunk a few ms.
CHUNK_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Produce -> counted: the target is p99 <= 2 s, so resolve 50 ms .. 10 s finely.
LATENCY_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0)
# API: the gap-query target is p99 <= 50 ms.
API_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


# The *_created series double the exposition size and no dashboard here uses them.
disable_created_metrics()  # type: ignore[no-untyped-call]  # unannotated upstream


def render(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)


@dataclass(frozen=True)
class IngestMetrics:
    registry: CollectorRegistry
    messages: Counter
    events_consumed: Counter
    events_counted: Counter
    duplicates: Counter
    dead_letters: Counter
    data_quality: Counter
    replays_skipped: Counter
    chunk_seconds: Histogram
    end_to_end_seconds: Histogram
    consumer_lag: Gauge
    redis_retries: Counter
    partition_events: Gauge
    partition_unbalanced: Gauge
    dedup_entries: Gauge
    dedup_bytes: Gauge
    rebuilding: Gauge

    @classmethod
    def create(cls, registry: CollectorRegistry | None = None) -> IngestMetrics:
        r = registry or CollectorRegistry()
        return cls(
            registry=r,
            messages=Counter(
                "gapwatch_messages_consumed", "Kafka messages consumed", ["partition"], registry=r
            ),
            events_consumed=Counter(
                "gapwatch_events_consumed",
                "Events read from messages (an undecodable message counts as one)",
                ["partition"],
                registry=r,
            ),
            events_counted=Counter(
                "gapwatch_events_counted", "Events counted into Redis", ["partition"], registry=r
            ),
            duplicates=Counter(
                "gapwatch_duplicates",
                "Events not counted because their event_id was already counted",
                ["partition"],
                registry=r,
            ),
            dead_letters=Counter(
                "gapwatch_dead_letters",
                "Events sent to the dead-letter topic",
                ["reason"],
                registry=r,
            ),
            data_quality=Counter(
                "gapwatch_data_quality_issues",
                "Counted events with a missing or invalid demographic code",
                ["reason"],
                registry=r,
            ),
            replays_skipped=Counter(
                "gapwatch_replayed_messages_skipped",
                "Redelivered messages skipped because Redis already holds their effect",
                registry=r,
            ),
            chunk_seconds=Histogram(
                "gapwatch_chunk_processing_seconds",
                "Time to decode, enrich, dead-letter and atomically store one chunk",
                buckets=CHUNK_BUCKETS,
                registry=r,
            ),
            end_to_end_seconds=Histogram(
                "gapwatch_end_to_end_latency_seconds",
                "Kafka message CreateTime to counts committed in Redis",
                buckets=LATENCY_BUCKETS,
                registry=r,
            ),
            consumer_lag=Gauge(
                "gapwatch_consumer_lag_messages",
                "Fetch high watermark minus the next offset stored in Redis",
                ["partition"],
                registry=r,
            ),
            redis_retries=Counter(
                "gapwatch_redis_retries", "Redis writes retried after an error", registry=r
            ),
            partition_events=Gauge(
                "gapwatch_partition_events",
                "Totals stored in Redis with the counts, per partition since the store began "
                "(kind: messages, consumed, counted, duplicates, dead_lettered)",
                ["partition", "kind"],
                registry=r,
            ),
            partition_unbalanced=Gauge(
                "gapwatch_partition_unbalanced",
                "1 when consumed != counted + duplicates + dead_lettered for the partition",
                ["partition"],
                registry=r,
            ),
            dedup_entries=Gauge(
                "gapwatch_dedup_index_entries",
                "Event ids held in this worker's de-duplication index",
                registry=r,
            ),
            dedup_bytes=Gauge(
                "gapwatch_dedup_index_bytes",
                "Memory held by this worker's de-duplication index (numpy arrays)",
                registry=r,
            ),
            rebuilding=Gauge(
                "gapwatch_ingest_rebuilding",
                "1 while the worker replays its partitions after Redis lost its state",
                registry=r,
            ),
        )

    def show_balances(self, rows: Iterable[PartitionBalance]) -> None:
        """Set the reconciliation gauges from balances read from Redis."""
        for row in rows:
            for kind in KINDS:
                self.partition_events.labels(row.partition, kind).set(getattr(row, kind))
            self.partition_unbalanced.labels(row.partition).set(0 if row.balanced else 1)


@dataclass(frozen=True)
class ApiMetrics:
    registry: CollectorRegistry
    requests: Counter
    latency: Histogram

    @classmethod
    def create(cls, registry: CollectorRegistry | None = None) -> ApiMetrics:
        r = registry or CollectorRegistry()
        return cls(
            registry=r,
            requests=Counter(
                "gapwatch_api_requests",
                "HTTP requests served",
                ["method", "route", "status"],
                registry=r,
            ),
            latency=Histogram(
                "gapwatch_api_request_duration_seconds",
                "HTTP request latency",
                ["method", "route"],
                buckets=API_BUCKETS,
                registry=r,
            ),
        )
