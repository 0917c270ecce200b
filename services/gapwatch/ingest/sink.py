"""Apply chunks to Redis exactly once in effect, with the next chunk prepared meanwhile.

Per partition the sink tracks the next offset it has *planned* (applied, or in flight).
A chunk is filtered against it (redelivered messages are skipped), checked against the
de-duplication index and processed in Python while the previous chunk's write runs
inside Redis on the other core; then the previous write is awaited and this chunk's
starts. A write first produces the chunk's dead letters and waits for the broker's
acks, then runs one atomic script that checks the store's epoch, compare-and-sets each
partition's offset and applies counts, offsets, tallies, new event ids and freshness
together. Only then are the chunk's Kafka messages acknowledged (so faust never commits
past what Redis holds, though nothing relies on Kafka's commits: see ``positions``).

- An offset conflict (another writer, a rebalance) reloads offsets and the
  de-duplication index from Redis, re-processes that chunk, and retries.
- A changed or missing epoch (Redis emptied, or ``gapwatch rebuild``) means the store no
  longer holds what this worker planned on: the sink stops applying, drops what it has
  prepared, and asks the worker to re-join its group (``on_state_lost``) so every
  partition is re-positioned from what Redis now holds: the earliest offset for an
  emptied store, i.e. a rebuild by replay.
- Redis errors retry with backoff; after ``max_attempts`` the error propagates and the
  worker stops with a clear log line.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Protocol

from gapwatch.adapters.metrics import IngestMetrics
from gapwatch.adapters.redis_store import EpochChanged, OffsetConflict, PartitionCommit, RedisStore
from gapwatch.core.backoff import backoff_ms
from gapwatch.core.errors import TransientError
from gapwatch.ingest.processor import ChunkProcessor, ChunkResult, DeadLetter, InMessage
from gapwatch.ingest.readiness import Readiness

__all__ = ["DeadLetterPublisher", "IngestSink"]

logger = logging.getLogger(__name__)

OnApplied = Callable[[], Awaitable[None]]

POSITION_GRACE_MS = 10_000
"""How long a partition may deliver only offsets past what Redis holds (messages
fetched before a rebalance) before the worker re-joins to be re-positioned."""


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
    generation: int
    dead_letters_sent: bool = False
    dropped: bool = False
    """Not applied because the worker must be re-positioned: never acknowledged."""


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
        on_state_lost: Callable[[], None] | None = None,
    ) -> None:
        self._topic = topic
        self._processor = processor
        self._store = store
        self._dlq = dead_letters
        self._metrics = metrics
        self._clock = clock_ms
        self._retention = retention_ms
        self._max_attempts = max_attempts
        self._on_state_lost = on_state_lost or (lambda: None)
        self._stored: dict[int, int] = {}
        """Next offset per partition known to be stored in Redis."""
        self._planned: dict[int, int] | None = None
        """Next offset per partition once in-flight writes land; None = reload."""
        self._inflight: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        """Serialises preparing: the de-duplication index is shared state."""
        self._generation = 0
        """Bumped whenever planned state is reloaded; older prepared chunks re-prepare."""
        self.epoch: str | None = None
        """The store epoch this worker's offsets and index belong to (None: not adopted
        yet, or lost)."""
        self._lost = False
        self._expected: dict[int, int] = {}
        """First offset each partition should deliver after an assignment."""
        self._gaps: dict[int, int] = {}
        """Partition -> first offset of a gap already re-checked once (a real log gap:
        compaction or transaction markers), so it is accepted the second time."""
        self._past: dict[int, tuple[int, int]] = {}
        """Partition -> (when, offset) of the first message past the expected offset."""
        self.readiness = Readiness()

    # ---------------------------------------------------------------- positions
    def next_offsets(self) -> dict[int, int]:
        return dict(self._stored)

    async def resume_from_store(self, partitions: Iterable[int]) -> dict[int, int]:
        """On assignment: adopt the store's epoch (starting one, and clearing leftovers,
        if Redis is new or was emptied), reload offsets, drop the in-memory index, and
        return the offset each assigned partition must be read from: the stored next
        offset, or 0 (the earliest retained) where none is stored."""
        async with self._lock:
            epoch, started = await self._store.adopt_epoch()
            rebuilt = started or self._lost or (self.epoch is not None and epoch != self.epoch)
            self.epoch, self._lost = epoch, False
            await self._reload()
            positions = {p: self._stored.get(p, 0) for p in partitions}
            self._expected = dict(positions)
            self._past = {}
        if rebuilt or self.readiness.state == "rebuilding":
            logger.warning("store epoch %s: replaying partitions %s", epoch, sorted(positions))
            self.readiness.start_rebuild(positions)
        else:
            self.readiness.assigned(positions)
        return positions

    async def check_epoch(self) -> None:
        """Notice an emptied or rebuilt store even when no chunk arrives (a timer)."""
        if self.epoch is None:
            return
        found = await self._store.epoch()
        if found != self.epoch:
            self._lose_state(found)

    def _lose_state(self, found: str | None) -> None:
        if self._lost:
            return
        logger.error(
            "redis state lost or rebuilt (epoch %s -> %s): re-joining to replay",
            self.epoch,
            found or "missing",
        )
        self.readiness.lost()
        self._halt()
        self.epoch = None

    def halt_until_resumed(self) -> None:
        """Positions could not be read from Redis on assignment: the consumer sits at
        Kafka's committed offsets, which nothing vouches for. Apply nothing until a
        later re-join reads them."""
        logger.error("positions unknown after assignment: halting until a re-join works")
        self._halt()

    def _halt(self) -> None:
        """Stop applying until the worker is re-positioned from Redis (a re-join)."""
        self._lost = True
        self._planned = None
        self._generation += 1
        self._processor.seen.forget_all()
        self._on_state_lost()

    def _positioned(self, messages: Sequence[InMessage]) -> list[InMessage] | None:
        """The messages that may be applied, or None if the worker must re-join.

        After an assignment each partition must resume at the offset Redis holds. A
        message past it is either one fetched before the rebalance, still in faust's
        take buffer (the re-read from the right offset follows it), or a sign the
        consumer sits past what Redis holds, where applying would skip events. So such
        messages are held back, never applied, until the partition delivers an offset at
        or before the expected one; if that does not happen within ``POSITION_GRACE_MS``
        the worker re-joins. A gap seen again after a re-join is a real gap in the log
        (compaction, transaction markers) and is accepted.
        """
        keep: list[InMessage] = []
        now = self._clock()
        for m in messages:
            expected = self._expected.get(m.partition)
            if expected is None:
                keep.append(m)
            elif m.offset <= expected or self._gaps.get(m.partition) == m.offset:
                del self._expected[m.partition]
                self._past.pop(m.partition, None)
                keep.append(m)
            else:
                self._past.setdefault(m.partition, (now, m.offset))
        return None if self.positions_overdue() else keep

    def positions_overdue(self) -> bool:
        """Whether a partition has shown only offsets past what Redis holds for too long
        (then halt and re-join). Called with each chunk and by the worker's timer."""
        now = self._clock()
        for partition, (since, offset) in self._past.items():
            if now - since > POSITION_GRACE_MS:
                logger.warning(
                    "partition %d delivers offset %d but redis holds %d: re-joining",
                    partition,
                    offset,
                    self._expected.get(partition, -1),
                )
                self._gaps[partition] = offset
                self._past.clear()
                self._halt()
                return True
        return False

    @property
    def state_lost(self) -> bool:
        return self._lost

    async def _adopt(self) -> None:
        self.epoch, _ = await self._store.adopt_epoch()

    async def _reload(self) -> None:
        self._stored = await self._store.load_offsets(self._topic)
        self._planned = dict(self._stored)
        self._generation += 1
        self._processor.seen.forget_all()

    # ---------------------------------------------------------------- chunks
    async def handle(
        self, messages: Sequence[InMessage], on_applied: OnApplied | None = None
    ) -> None:
        """Prepare this chunk now and start writing it once the previous write is done.

        ``on_applied`` runs after this chunk is durably in Redis (e.g. Kafka acks). While
        the worker waits to be re-positioned (state lost, or a position past what Redis
        holds) chunks are dropped without it: acks would let faust commit offsets Redis
        does not hold; they are read again after the re-join.
        """
        positioned = None if self.state_lost else self._positioned(messages)
        if positioned is None:
            await self.drain()
            self._metrics.replays_skipped.inc(len(messages))
            return
        held_back = len(messages) - len(positioned)
        if held_back:
            self._metrics.replays_skipped.inc(held_back)
            messages = positioned
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
        async with self._lock:
            if self.epoch is None:  # first chunk without an assignment (tests, tools)
                await self._with_retries(self._adopt)
            if self._planned is None:
                await self._with_retries(self._reload)
            planned = self._planned if self._planned is not None else {}
            fresh = [m for m in messages if m.offset >= planned.get(m.partition, 0)]
            skipped = len(messages) - len(fresh)
            if skipped:
                self._metrics.replays_skipped.inc(skipped)
            started = self._clock()
            if not fresh:
                return _Prepared(messages, None, [], started, on_applied, self._generation)
            await self._load_seen({m.partition for m in fresh})
            # In a thread so the event loop keeps answering /readyz and /metrics and
            # keeps fetching while a large chunk (~1 s of CPU) is processed; the GIL
            # still serialises the Python work, so this costs no throughput.
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
                    duplicates=t.duplicates,
                )
                for p, t in result.partitions.items()
            ]
            for c in commits:
                planned[c.partition] = c.new_next
            return _Prepared(messages, result, commits, started, on_applied, self._generation)

    async def _load_seen(self, partitions: Iterable[int]) -> None:
        seen = self._processor.seen
        for partition in sorted(p for p in partitions if not seen.loaded(p)):
            stored: dict[int, bytes] = {}
            await self._with_retries(partial(self._read_seen, partition, stored))
            seen.load(partition, stored)

    async def _read_seen(self, partition: int, into: dict[int, bytes]) -> None:
        into.update(await self._store.load_seen(self._topic, partition))

    async def _write(self, prepared: _Prepared) -> None:
        await self._with_retries(lambda: self._write_once(prepared))
        if prepared.on_applied is not None and not prepared.dropped:
            await prepared.on_applied()

    async def _write_once(self, prepared: _Prepared) -> None:
        if self.state_lost:
            prepared.dropped = True  # read again once the worker is re-positioned
            return
        if prepared.generation != self._generation:
            await self._replan(prepared)
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
                epoch=self.epoch or "",
                seen=result.seen,
            )
        except EpochChanged as exc:
            self._lose_state(exc.found)
            prepared.dropped = True
            return
        except OffsetConflict as exc:
            logger.warning("offset conflict, re-reading offsets detail=%s", exc)
            async with self._lock:
                await self._reload()
            await self._replan(prepared)
            raise TransientError(f"retrying after offset conflict: {exc}") from exc
        for c in prepared.commits:
            self._stored[c.partition] = c.new_next
        self.readiness.stored(self._stored)
        self._record(result, prepared.started_ms, self._clock())

    async def _replan(self, prepared: _Prepared) -> None:
        """Re-process a chunk against the state Redis holds now (after a conflict, or
        when the chunk was prepared before the last reload)."""
        replanned = await self._prepare(prepared.messages, prepared.on_applied)
        if replanned.result is not None and replanned.result.dead_letters:
            # The letters of this chunk were already acknowledged by the broker.
            replanned.dead_letters_sent = prepared.dead_letters_sent
        prepared.result, prepared.commits = replanned.result, replanned.commits
        prepared.started_ms = replanned.started_ms
        prepared.generation = replanned.generation
        prepared.dead_letters_sent = replanned.dead_letters_sent

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
            if t.duplicates:
                m.duplicates.labels(label).inc(t.duplicates)
        for letter in result.dead_letters:
            m.dead_letters.labels(letter.reason).inc()
        for reason, n in result.quality.items():
            m.data_quality.labels(reason).inc(n)
        m.chunk_seconds.observe((done_ms - started_ms) / 1000)
        for produced in result.produced_at_ms:
            m.end_to_end_seconds.observe(max(0, done_ms - produced) / 1000)
        seen = self._processor.seen
        m.dedup_entries.set(seen.entries)
        m.dedup_bytes.set(seen.nbytes)
