"""Apply chunks to Redis exactly once in effect.

The sink keeps, per partition, the next offset it knows is stored in Redis. A chunk is
filtered against it (redelivered messages are skipped), processed, its dead letters are
produced and *confirmed*, and then counts + offsets + tallies are written in one atomic
script that compare-and-sets each partition's offset. A conflict (another writer, or a
rebuilt store) reloads the offsets and retries; Redis errors retry with backoff and
nothing is acknowledged to Kafka until the write has succeeded.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Protocol

from gapwatch.adapters.metrics import IngestMetrics
from gapwatch.adapters.redis_store import OffsetConflict, PartitionCommit, RedisStore
from gapwatch.core.backoff import backoff_ms
from gapwatch.core.errors import TransientError
from gapwatch.ingest.processor import ChunkProcessor, ChunkResult, DeadLetter, InMessage

__all__ = ["DeadLetterPublisher", "IngestSink"]

logger = logging.getLogger(__name__)


class DeadLetterPublisher(Protocol):
    async def publish(self, letters: Sequence[DeadLetter]) -> None:
        """Produce and wait for the broker's acknowledgement of every letter."""
        ...


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
        self._stored_next: dict[int, int] | None = None
        self.applied_chunks = 0

    def next_offsets(self) -> dict[int, int]:
        return dict(self._stored_next or {})

    async def reload_offsets(self) -> dict[int, int]:
        self._stored_next = await self._store.load_offsets(self._topic)
        return dict(self._stored_next)

    async def handle(self, messages: Sequence[InMessage]) -> ChunkResult | None:
        """Apply one chunk; returns its result, or None when all of it was applied before."""
        attempt = 0
        while True:
            try:
                if self._stored_next is None:
                    await self.reload_offsets()
                return await self._apply_once(messages)
            except OffsetConflict as exc:
                logger.warning("offset conflict, reloading offsets detail=%s", exc)
                self._stored_next = None
            except TransientError as exc:
                if attempt + 1 >= self._max_attempts:
                    logger.error("giving up after %d attempts: %s", attempt + 1, exc)
                    raise
                delay = backoff_ms(attempt)
                logger.warning(
                    "redis write failed attempt=%d retry_in_ms=%d error=%s", attempt, delay, exc
                )
                self._metrics.redis_retries.inc()
                await asyncio.sleep(delay / 1000)
                attempt += 1
                self._stored_next = None

    async def _apply_once(self, messages: Sequence[InMessage]) -> ChunkResult | None:
        stored = self._stored_next if self._stored_next is not None else {}
        fresh = [m for m in messages if m.offset >= stored.get(m.partition, 0)]
        skipped = len(messages) - len(fresh)
        if skipped:
            self._metrics.replays_skipped.inc(skipped)
        if not fresh:
            return None
        started = self._clock()
        result = self._processor.process(fresh, started)
        await self._dlq.publish(result.dead_letters)
        commits = [
            PartitionCommit(
                partition=p,
                expected_next=stored.get(p, -1),
                new_next=t.last_offset + 1,
                messages=t.messages,
                consumed=t.consumed,
                counted=t.counted,
                dead_lettered=t.dead_lettered,
            )
            for p, t in result.partitions.items()
        ]
        await self._store.apply(
            self._topic, commits, result.deltas, result.freshness, started, self._retention
        )
        done = self._clock()
        if self._stored_next is None:
            self._stored_next = {}
        for c in commits:
            self._stored_next[c.partition] = c.new_next
        self._record(result, started, done)
        self.applied_chunks += 1
        return result

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
