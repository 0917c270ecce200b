"""The faust-streaming worker: transport, consumer group and agent runner only.

faust's per-event machinery costs ~100 us (docs/streaming-anchors.md §1), so the agent
takes whole chunks of *messages* (``take_events``) and hands them to ``IngestSink``; all
per-event work happens in gapwatch's own code. Exactly-once effect comes from the
offsets stored in Redis with the counts, never from Kafka transactions (Tansu leaks
aborted records, docs/tansu.md §4). Agent concurrency is 1 because faust can commit past
an unfinished message at higher concurrency (faust-streaming#606).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import faust
from aiokafka.errors import IllegalStateError

from gapwatch.adapters.avro_codec import AvroCodec
from gapwatch.adapters.metrics import CONTENT_TYPE_LATEST, IngestMetrics, render
from gapwatch.adapters.redis_store import RedisStore
from gapwatch.core.errors import TransientError
from gapwatch.core.reconcile import balances
from gapwatch.core.refdata import ReferenceData
from gapwatch.core.validation import Limits
from gapwatch.core.windows import DAY_MS
from gapwatch.ingest.processor import ChunkProcessor, DeadLetter, InMessage
from gapwatch.ingest.sink import IngestSink
from gapwatch.settings import Settings

__all__ = ["IngestWorker", "build_worker"]

logger = logging.getLogger(__name__)
SERVICE = "gapwatch-ingest"


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class FaustDeadLetters:
    """Produces dead letters through the app's producer and waits for every ack.

    The payload is untouched; headers say why. Letters keep the source message's key, so
    one trust's rejects stay in order on one partition of the dead-letter topic (which
    need not have as many partitions as the source).
    """

    def __init__(self, app: faust.App, dlq_topic: str, source_topic: str) -> None:
        self._app = app
        self._topic = dlq_topic
        self._source = source_topic

    async def publish(self, letters: Sequence[DeadLetter]) -> None:
        if not letters:
            return
        producer = self._app.producer
        failed_at = str(_now_ms()).encode()
        futures = []
        for letter in letters:
            headers = [
                ("gapwatch.reason", letter.reason.encode()),
                ("gapwatch.error_detail", letter.detail.encode()[:1000]),
                ("gapwatch.source_topic", self._source.encode()),
                ("gapwatch.source_partition", str(letter.partition).encode()),
                ("gapwatch.source_offset", str(letter.offset).encode()),
                ("gapwatch.service", SERVICE.encode()),
                ("gapwatch.failed_at_ms", failed_at),
            ]
            if letter.batch_index is not None:
                headers.append(("gapwatch.batch_index", str(letter.batch_index).encode()))
            futures.append(
                await producer.send(self._topic, letter.key, letter.payload, None, None, headers)
            )
        await asyncio.gather(*futures)


@dataclass
class IngestWorker:
    app: faust.App
    sink: IngestSink
    store: RedisStore
    metrics: IngestMetrics


def build_worker(settings: Settings, ref: ReferenceData, codec: AvroCodec) -> IngestWorker:
    k, ing = settings.kafka, settings.ingest
    datadir = ing.data_dir / str(ing.web_port)
    datadir.mkdir(parents=True, exist_ok=True)
    app = faust.App(
        k.group_id,
        broker=[f"kafka://{host.strip()}" for host in k.bootstrap.split(",")],
        store="memory://",
        datadir=str(datadir),
        autodiscover=False,
        web_enabled=True,
        web_port=ing.web_port,
        web_bind=ing.web_host,
        web_host=ing.web_host,
        broker_session_timeout=k.session_timeout_s,
        broker_heartbeat_interval=k.heartbeat_interval_s,
        consumer_auto_offset_reset="earliest",
        topic_partitions=k.partitions,
        topic_replication_factor=k.replication_factor,
        topic_allow_declare=False,
        producer_acks=-1,
        stream_wait_empty=False,
        broker_commit_interval=1.0,
    )
    metrics = IngestMetrics.create()
    store = RedisStore.from_url(settings.redis.url, settings.redis.namespace)
    limits = Limits(
        retention_ms=ing.day_retention_days * DAY_MS, future_skew_ms=ing.future_skew_s * 1000
    )
    retention = {"h": ing.hour_retention_days * DAY_MS, "d": ing.day_retention_days * DAY_MS}
    processor = ChunkProcessor(codec, ref, limits, retention["h"])
    sink = IngestSink(
        topic=k.topic,
        processor=processor,
        store=store,
        dead_letters=FaustDeadLetters(app, k.dlq_topic, k.topic),
        metrics=metrics,
        clock_ms=_now_ms,
        retention_ms=retention,
        max_attempts=ing.redis_retry_attempts,
    )
    source = app.topic(k.topic, value_serializer="raw", key_serializer="raw")

    @app.agent(source, concurrency=1, name="ingest")
    async def ingest(stream: Any) -> None:
        # noack_take: messages are acknowledged to faust (and so committed to Kafka) only
        # once their chunk is in Redis, never while its write is still in flight.
        async for events in stream.noack_take(ing.chunk_max_messages, ing.chunk_within_s):
            messages = [
                InMessage(
                    e.message.partition,
                    e.message.offset,
                    int(e.message.timestamp * 1000) if e.message.timestamp else None,
                    e.message.value,
                    e.message.key,
                )
                for e in events
            ]

            async def ack(chunk: Sequence[Any] = events) -> None:
                for event in chunk:
                    await stream.ack(event)

            await sink.handle(messages, on_applied=ack)
            _update_lag(app, sink, metrics)

    @app.timer(interval=5.0)  # type: ignore[untyped-decorator]  # faust ships no types
    async def refresh_lag() -> None:
        sink.raise_if_failed()  # stops the worker if a write gave up while traffic is idle
        _update_lag(app, sink, metrics)

    @app.page("/healthz")
    async def healthz(web: Any, request: Any) -> Any:
        return web.json({"status": "ok", "service": SERVICE})

    @app.page("/readyz")
    async def readyz(web: Any, request: Any) -> Any:
        redis_ok = await store.ping()
        assigned = sorted(tp.partition for tp in app.consumer.assignment() if tp.topic == k.topic)
        body = {"redis": redis_ok, "assigned_partitions": assigned}
        return web.json(body, status=200 if redis_ok else 503)

    @app.page("/metrics")
    async def metrics_view(web: Any, request: Any) -> Any:
        try:  # the reconciliation is what Redis holds, across restarts and workers
            metrics.show_balances(balances(await store.tallies(), await store.all_offsets()))
        except TransientError:
            pass  # Redis down: the other metrics still answer; readyz reports it
        # aiohttp refuses a charset inside content_type; the exposition is ASCII anyway.
        content_type = CONTENT_TYPE_LATEST.split("; charset")[0]
        return web.bytes(render(metrics.registry), content_type=content_type)

    return IngestWorker(app, sink, store, metrics)


def _update_lag(app: faust.App, sink: IngestSink, metrics: IngestMetrics) -> None:
    """Lag from the fetch-response high watermark (correct on Tansu, unlike
    ListOffsets(latest): docs/tansu.md §4) minus the next offset stored in Redis."""
    stored = sink.next_offsets()
    try:
        assignment = app.consumer.assignment()
    except (AttributeError, AssertionError):  # consumer not started yet
        return
    for tp in assignment:
        try:
            high = app.consumer.highwater(tp)
        except IllegalStateError:
            logger.debug("no high watermark yet partition=%d", tp.partition)
            continue
        if high is None or high < 0:
            continue
        metrics.consumer_lag.labels(str(tp.partition)).set(
            max(0, high - stored.get(tp.partition, 0))
        )
