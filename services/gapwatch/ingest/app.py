"""The faust-streaming worker: transport, consumer group and agent runner only.

faust's per-event machinery costs ~100 us (docs/streaming-anchors.md §1), so the agent
takes whole chunks of *messages* (``take_events``) and hands them to ``IngestSink``; all
per-event work happens in gapwatch's own code. Exactly-once effect comes from the
offsets stored in Redis with the counts, never from Kafka transactions (Tansu leaks
aborted records, docs/tansu.md §4). Agent concurrency is 1 because faust can commit past
an unfinished message at higher concurrency (faust-streaming#606).

Positions come from Redis, not from Kafka's committed offsets: when partitions are
assigned (start, rebalance) the worker reads the next offsets stored with the counts and
commits exactly those to the group before faust seeks to "committed", so it resumes
where Redis says (and from the earliest offset where Redis holds nothing: an emptied
store is rebuilt by replay). If Redis loses its state while the worker runs, the worker
re-joins its group (a rebalance, which clears faust's buffers) to be re-positioned the
same way; /readyz reports ``rebuilding`` until the replay catches up.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import faust
from aiokafka.errors import IllegalStateError

from gapwatch.adapters.avro_codec import AvroCodec
from gapwatch.adapters.metrics import CONTENT_TYPE_LATEST, IngestMetrics, render
from gapwatch.adapters.redis_store import RedisStore
from gapwatch.core.backoff import backoff_ms
from gapwatch.core.counting import LSOA_DAY
from gapwatch.core.errors import TransientError
from gapwatch.core.reconcile import balances
from gapwatch.core.refdata import ReferenceData
from gapwatch.core.validation import Limits
from gapwatch.core.windows import DAY_MS
from gapwatch.ingest.dedup import SeenIds
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
    retention = {
        "h": ing.hour_retention_days * DAY_MS,
        "d": ing.day_retention_days * DAY_MS,
        LSOA_DAY: ing.lsoa_retention_days * DAY_MS,
    }
    seen = SeenIds(ing.dedup_horizon_days * DAY_MS)
    processor = ChunkProcessor(codec, ref, limits, retention["h"], seen)
    rejoin = _Rejoin(app, k.topic)
    sink = IngestSink(
        topic=k.topic,
        processor=processor,
        store=store,
        dead_letters=FaustDeadLetters(app, k.dlq_topic, k.topic),
        metrics=metrics,
        clock_ms=_now_ms,
        retention_ms=retention,
        max_attempts=ing.redis_retry_attempts,
        on_state_lost=rejoin.request,
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

    async def resume_from_redis(sender: Any, **kwargs: Any) -> None:
        # faust sends on_rebalance_complete after assignment and before it seeks every
        # partition to its committed offset (tables/recovery.py): commit the offsets
        # Redis holds now, so that is where faust seeks.
        ours = {tp.partition: tp for tp in app.consumer.assignment() if tp.topic == k.topic}
        positions = await _with_backoff(lambda: sink.resume_from_store(sorted(ours)))
        if positions is None:  # Redis down: apply nothing until a later re-join works
            sink.halt_until_resumed()
            return
        rejoin.done()
        if positions:
            # faust's own commit path: OffsetCommit for assigned partitions, and faust's
            # record of "committed" follows, so its ack bookkeeping stays consistent.
            consumer: Any = app.consumer
            await consumer._commit_offsets({ours[p]: o for p, o in positions.items()})
            # And seek there: aiokafka's seek_to_committed skips a committed offset of
            # 0 (falsy), which would leave a rebuilt partition at its old position.
            # The partitions are paused until faust resumes them, so nothing is read
            # from the old position in between.
            for partition, offset in positions.items():
                await app.consumer.seek(ours[partition], offset)
            logger.info("resuming from redis offsets %s", positions)

    app.on_rebalance_complete.connect(resume_from_redis)  # type: ignore[arg-type]

    @app.timer(interval=2.0)  # type: ignore[untyped-decorator]  # faust ships no types
    async def refresh_lag() -> None:
        sink.raise_if_failed()  # stops the worker if a write gave up while traffic is idle
        try:
            await sink.check_epoch()
        except TransientError:
            pass  # Redis down: writes retry on their own; readyz reports it
        sink.positions_overdue()  # a partition stuck past what Redis holds: re-join
        await rejoin.maybe_rejoin()
        _update_lag(app, sink, metrics)

    @app.page("/healthz")
    async def healthz(web: Any, request: Any) -> Any:
        return web.json({"status": "ok", "service": SERVICE})

    @app.page("/readyz")
    async def readyz(web: Any, request: Any) -> Any:
        redis_ok = await store.ping()
        assigned = sorted(tp.partition for tp in app.consumer.assignment() if tp.topic == k.topic)
        state = sink.readiness.state if redis_ok else "redis_unavailable"
        body = {
            "state": state,
            "redis": redis_ok,
            "assigned_partitions": assigned,
            "epoch": sink.epoch,
            "rebuild_targets": {str(p): o for p, o in sink.readiness.targets.items()},
            "next_offsets": {str(p): o for p, o in sink.next_offsets().items()},
            "rebuilds_completed": sink.readiness.rebuilds,
            "fetch_positions": {
                str(tp.partition): await app.consumer.position(tp)
                for tp in app.consumer.assignment()
                if tp.topic == k.topic
            },
        }
        return web.json(body, status=200 if state == "ready" else 503)

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


class _Rejoin:
    """Re-join the consumer group so faust drops its buffers and every partition is
    re-positioned from Redis. Re-subscribing to the same topic is the standard client
    way to force that rebalance (aiokafka treats a new subscription as a change)."""

    def __init__(self, app: faust.App, topic: str) -> None:
        self._app = app
        self._topic = topic
        self._wanted = False
        self._last_s = 0.0

    def request(self) -> None:
        self._wanted = True

    def done(self) -> None:
        self._wanted = False

    async def maybe_rejoin(self) -> None:
        now = time.monotonic()
        if not self._wanted or now - self._last_s < 10.0:
            return  # a rebalance takes a few seconds on Tansu; do not pile them up
        self._last_s = now
        logger.warning("re-joining consumer group to re-read positions from redis")
        await self._app.consumer.subscribe([self._topic])


async def _with_backoff(
    operation: Callable[[], Awaitable[dict[int, int]]], attempts: int = 5
) -> dict[int, int] | None:
    """A few quick tries inside a rebalance callback (it must finish within the session
    timeout); None if Redis stays unavailable."""
    for attempt in range(attempts):
        try:
            return await operation()
        except TransientError as exc:
            logger.warning("cannot read positions from redis attempt=%d: %s", attempt, exc)
            await asyncio.sleep(backoff_ms(attempt) / 1000)
    return None


def _update_lag(app: faust.App, sink: IngestSink, metrics: IngestMetrics) -> None:
    """Lag from the fetch-response high watermark (correct on Tansu, unlike
    ListOffsets(latest): docs/tansu.md §4) minus the next offset stored in Redis."""
    stored = sink.next_offsets()
    metrics.rebuilding.set(0 if sink.readiness.state != "rebuilding" else 1)
    try:
        assignment = app.consumer.assignment()
    except (AttributeError, AssertionError):  # consumer not started yet
        return
    highwaters: dict[int, int] = {}
    for tp in assignment:
        try:
            high = app.consumer.highwater(tp)
        except IllegalStateError:
            logger.debug("no high watermark yet partition=%d", tp.partition)
            continue
        if high is None or high < 0:
            continue
        highwaters[tp.partition] = high
        metrics.consumer_lag.labels(str(tp.partition)).set(
            max(0, high - stored.get(tp.partition, 0))
        )
    sink.readiness.observe_highwaters(highwaters, stored)
