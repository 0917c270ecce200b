"""Apply chunks to Redis exactly once in effect, with the next chunk prepared meanwhile.

Per partition the sink tracks the next offset it has *planned* (applied, or in flight).
A chunk is filtered against it (redelivered messages are skipped) and processed in
Python while the previous chunk's write runs inside Redis on the other core; then the
previous write is awaited and this chunk's starts. A write first produces the chunk's
dead letters and waits for the broker's acks, then runs one atomic script that
compare-and-sets each partition's offset and applies counts, offsets, tallies and
freshness together. Only then are the chunk's Kafka messages acknowledged (so faust
never commits past what Redis holds).

A conflict (another writer, a rebalance, a rebuilt store) reloads the offsets from Redis,
re-filters and re-processes that chunk, and retries. Redis errors retry with backoff;
after ``max_attempts`` the error propagates and the worker stops with a clear log line.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from gapwatch.adapters.metrics import IngestMetrics
from gapwatch.adapters.redis_store import OffsetConflict, PartitionCommit, RedisStore
from gapwatch.core.backoff import backoff_ms
from gapwatch.core.errors import TransientError
from gapwatch.ingest.processor import ChunkProcessor, ChunkResult, DeadLetter, InMessage

__all__ = ["DeadLetterPublisher", "IngestSink"]

logger = logging.getLogger(__name__)

OnApplied = Callable[[], Awaitable[None]]


class DeadLetterPublisher(Protocol):
    async def publish(self, letters: Sequence[DeadLetter]) -> None:
        """Produce and wait for the broker's acknowledgement of every letter."""
        ...


@dataclass
class _Prepared:
    messages: Sequence[InMessage]
    result: ChunkResult | None
    commits: list[PartitionCommit]
    started_ms: int
    on_applied: OnApplied | None
    dead_letters_sent: bool = False


class IngestSink:
    def __init__(
        self,
        *,
        topic: str,
        processor: ChunkProcessor,
        store: RedisStore,
        dead_letters: DeadLetterPublisher,
        metrics: IngestMetrics,
        clock_ms: Callable[[], int],
        retention_ms: dict[str, int],
        max_attempts: int = 60,
    ) -> None:
        self._topic = topic
        self._processor = processor
        self._store = store
        self._dlq = dead_letters
        self._metrics = metrics
        self._clock = clock_ms
        self._retention = retention_ms
        self._max_attempts = max_attempts
        self._stored: dict[int, int] = {}
        """Next offset per partition known to be stored in Redis."""
        self._planned: dict[int, int] | None = None
        """Next offset per partition once in-flight writes land; None = reload."""
        self._inflight: asyncio.Task[None] | None = None

    def next_offsets(self) -> dict[int, int]:
        return dict(self._stored)

    async def reload_offsets(self) -> dict[int, int]:
        self._stored = await self._store.load_offsets(self._topic)
        self._planned = dict(self._stored)
        return dict(self._stored)

    async def handle(
        self, messages: Sequence[InMessage], on_applied: OnApplied | None = None
    ) -> None:
        """Prepare this chunk now and start writing it once the previous write is done.

        ``on_applied`` runs after this chunk is durably in Redis (e.g. Kafka acks).
        """
        prepared = await self._prepare(messages, on_applied)
        await self.drain()
        self._inflight = asyncio.ensure_future(self._write(prepared))
        self._inflight.add_done_callback(self._log_failure)

    @staticmethod
    def _log_failure(task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            logger.error("chunk write failed for good: %s", task.exception())

    def raise_if_failed(self) -> None:
        """Surface a failed background write even when no further chunk arrives."""
        task = self._inflight
        if task is not None and task.done() and not task.cancelled():
            exc = task.exception()
            if exc is not None:
                self._inflight = None
                raise exc

    async def drain(self) -> None:
        """Wait for the in-flight write; its failure propagates here."""
        task, self._inflight = self._inflight, None
        if task is not None:
            await task

    async def _prepare(
        self, messages: Sequence[InMessage], on_applied: OnApplied | None
    ) -> _Prepared:
        if self._planned is None:
            await self._with_retries(self.reload_offsets)
        planned = self._planned if self._planned is not None else {}
        fresh = [m for m in messages if m.offset >= planned.get(m.partition, 0)]
        skipped = len(messages) - len(fresh)
        if skipped:
            self._metrics.replays_skipped.inc(skipped)
        started = self._clock()
        if not fresh:
            return _Prepared(messages, None, [], started, on_applied)
        # In a thread so the event loop keeps answering /readyz and /metrics and keeps
        # fetching while a large chunk (~1-2 s of CPU) is processed; the GIL still
        # serialises the Python work, so this costs no throughput.
        result = await asyncio.to_thread(self._processor.process, fresh, started)
        commits = [
            PartitionCommit(
                partition=p,
                expected_next=planned.get(p, -1),
                new_next=t.last_offset + 1,
                messages=t.messages,
                consumed=t.consumed,
                counted=t.counted,
                dead_lettered=t.dead_lettered,
            )
            for p, t in result.partitions.items()
        ]
        for c in commits:
            planned[c.partition] = c.new_next
        return _Prepared(messages, result, commits, started, on_applied)

    async def _write(self, prepared: _Prepared) -> None:
        await self._with_retries(lambda: self._write_once(prepared))
        if prepared.on_applied is not None:
            await prepared.on_applied()

    async def _write_once(self, prepared: _Prepared) -> None:
        result = prepared.result
        if result is None:
            return
        try:
            if not prepared.dead_letters_sent:
                await self._dlq.publish(result.dead_letters)
                prepared.dead_letters_sent = True
            await self._store.apply(
                self._topic,
                prepared.commits,
                result.deltas,
                result.freshness,
                prepared.started_ms,
                self._retention,
            )
        except OffsetConflict as exc:
            logger.warning("offset conflict, re-reading offsets detail=%s", exc)
            await self.reload_offsets()
            replanned = await self._prepare(prepared.messages, prepared.on_applied)
            if replanned.result is not None and replanned.result.dead_letters:
                # The letters of this chunk were already acknowledged by the broker.
                replanned.dead_letters_sent = prepared.dead_letters_sent
            prepared.result, prepared.commits = replanned.result, replanned.commits
            prepared.started_ms = replanned.started_ms
            raise TransientError(f"retrying after offset conflict: {exc}") from exc
        for c in prepared.commits:
            self._stored[c.partition] = c.new_next
        self._record(result, prepared.started_ms, self._clock())

    async def _with_retries(self, operation: Callable[[], Awaitable[object]]) -> None:
        attempt = 0
        while True:
            try:
                await operation()
                return
            except TransientError as exc:
                if attempt + 1 >= self._max_attempts:
                    logger.error("giving up after %d attempts: %s", attempt + 1, exc)
                    raise
                delay = 0 if isinstance(exc.__cause__, OffsetConflict) else backoff_ms(attempt)
                logger.warning(
                    "redis write failed attempt=%d retry_in_ms=%d error=%s", attempt, delay, exc
                )
                self._metrics.redis_retries.inc()
                await asyncio.sleep(delay / 1000)
                attempt += 1

    def _record(self, result: ChunkResult, started_ms: int, done_ms: int) -> None:
        m = self._metrics
        for p, t in result.partitions.items():
            label = str(p)
            m.messages.labels(label).inc(t.messages)
            m.events_consumed.labels(label).inc(t.consumed)
            m.events_counted.labels(label).inc(t.counted)
        for letter in result.dead_letters:
            m.dead_letters.labels(letter.reason).inc()
        for reason, n in result.quality.items():
            m.data_quality.labels(reason).inc(n)
        m.chunk_seconds.observe((done_ms - started_ms) / 1000)
        for produced in result.produced_at_ms:
            m.end_to_end_seconds.observe(max(0, done_ms - produced) / 1000)
