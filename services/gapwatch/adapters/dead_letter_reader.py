"""The newest dead letters, for the API (``GET /v1/dead-letters``).

Reads only the tail of each partition of the dead-letter topic: the last ``per_partition``
letters, with ``assign()`` (no group joined, nothing committed), in a worker thread with
a short deadline. The answer is kept for a few seconds, so a dashboard polling the
endpoint costs the broker one read per ``cache_s``, whoever asks; a failure is kept as
long, so a down broker costs one timeout per ``cache_s``, not one per request.

Where the tail starts comes from ListOffsets(latest), which Tansu answers too low (the
base offset of the newest batch + 1; docs/tansu.md §4). Too low only means reading a
little more, so the reader starts there, reads to the end that fetch responses report
(an EOF, or the cached high watermark) and keeps the last ``per_partition``.

Payloads are dropped as each message is parsed: what a trust sent (a postcode, say)
never reaches the API's memory.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Protocol

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from gapwatch.core.errors import TransientError
from gapwatch.ingest.dead_letters import DeadLetterRecord, parse_record

__all__ = ["MAX_PER_PARTITION", "DeadLetterReader", "DeadLetterSource", "Tail", "read_tail"]

logger = logging.getLogger(__name__)

MAX_PER_PARTITION: Final = 2_000
"""Upper bound on letters read per partition per read (the API shows at most 500)."""
_FETCH_WAIT_MS: Final = 100


@dataclass(frozen=True, slots=True)
class Tail:
    """The newest letters of every partition (payloads dropped), as read at ``read_at_ms``."""

    letters: tuple[DeadLetterRecord, ...]
    per_partition: int
    read_at_ms: int


class DeadLetterSource(Protocol):
    async def recent(self) -> Tail:
        """The tail of the dead-letter topic; ``TransientError`` when it cannot be read."""
        ...


class DeadLetterReader:
    """A read function run in a worker thread, its answer (or failure) cached briefly."""

    def __init__(
        self,
        read: Callable[[], Tail],
        *,
        cache_s: float = 5.0,
        timeout_s: float = 5.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._read = read
        self._cache_s = cache_s
        self._timeout_s = timeout_s
        self._monotonic = monotonic
        self._lock = asyncio.Lock()
        self._answer: Tail | TransientError | None = None
        self._at = 0.0

    @classmethod
    def kafka(
        cls,
        bootstrap: str,
        topic: str,
        *,
        per_partition: int = 200,
        timeout_s: float = 3.0,
        cache_s: float = 5.0,
    ) -> DeadLetterReader:
        if not 1 <= per_partition <= MAX_PER_PARTITION:
            raise ValueError(f"per_partition must be 1..{MAX_PER_PARTITION}")
        return cls(
            lambda: read_tail(bootstrap, topic, per_partition, timeout_s),
            cache_s=cache_s,
            timeout_s=timeout_s + 2.0,  # the read's own deadline, plus closing the client
        )

    async def recent(self) -> Tail:
        async with self._lock:  # one read at a time; the others wait for its answer
            if self._answer is None or self._monotonic() - self._at >= self._cache_s:
                self._answer = await self._fresh()
                self._at = self._monotonic()
            if isinstance(self._answer, TransientError):
                raise self._answer
            return self._answer

    async def _fresh(self) -> Tail | TransientError:
        try:
            return await asyncio.wait_for(asyncio.to_thread(self._read), self._timeout_s)
        except TransientError as exc:
            return exc
        except TimeoutError:
            return TransientError(f"dead letters: no answer within {self._timeout_s:.0f} s")


def read_tail(bootstrap: str, topic: str, per_partition: int, timeout_s: float) -> Tail:
    """The last ``per_partition`` letters of each partition of ``topic`` (blocking).

    Raises ``TransientError`` when the broker does not answer, the topic is missing, or a
    partition was not read to its end within ``timeout_s``.
    """
    deadline = time.monotonic() + timeout_s
    consumer = Consumer(_config(bootstrap))
    try:
        starts = _tail_starts(consumer, topic, per_partition, deadline)
        consumer.assign([TopicPartition(topic, p, o) for p, o in starts.items()])
        by_partition = _read_to_end(consumer, topic, dict(starts), deadline)
    finally:
        consumer.close()
    letters = [r for records in by_partition.values() for r in records[-per_partition:]]
    return Tail(tuple(letters), per_partition, time.time_ns() // 1_000_000)


def _config(bootstrap: str) -> dict[str, Any]:
    rdkafka = logging.getLogger(f"{__name__}.librdkafka")
    return {
        "bootstrap.servers": bootstrap,
        "client.id": "gapwatch-api-dlq",
        "group.id": f"gapwatch-api-dlq-{uuid.uuid4().hex[:12]}",  # never joined
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "enable.partition.eof": True,
        "auto.offset.reset": "earliest",
        "fetch.wait.max.ms": _FETCH_WAIT_MS,
        "logger": rdkafka,
        # A down broker is reported once, as the 503; librdkafka's reconnect lines only
        # show at DEBUG.
        "log_level": 7 if rdkafka.isEnabledFor(logging.DEBUG) else 2,
    }


def _left(deadline: float) -> float:
    return max(0.1, deadline - time.monotonic())


def _tail_starts(
    consumer: Consumer, topic: str, per_partition: int, deadline: float
) -> dict[int, int]:
    """The offset to read from in each non-empty partition."""
    try:
        metadata = consumer.list_topics(topic, timeout=_left(deadline))
        described = metadata.topics.get(topic)
        if described is None or described.error is not None or not described.partitions:
            why = "no metadata" if described is None else _text(described.error)
            raise TransientError(f"dead-letter topic {topic} is not available ({why})")
        starts: dict[int, int] = {}
        for partition in sorted(described.partitions):
            marks = consumer.get_watermark_offsets(
                TopicPartition(topic, partition), timeout=_left(deadline), cached=False
            )
            if marks is None:
                raise TransientError(f"no watermarks for {topic} partition {partition}")
            low, high = marks
            if high > low:
                starts[partition] = max(low, high - per_partition)
    except KafkaException as exc:
        raise TransientError(f"kafka unavailable reading {topic}: {_text(exc.args[0])}") from exc
    return starts


def _read_to_end(
    consumer: Consumer, topic: str, next_offset: dict[int, int], deadline: float
) -> dict[int, list[DeadLetterRecord]]:
    records: dict[int, list[DeadLetterRecord]] = {p: [] for p in next_offset}
    unfinished = set(next_offset)
    while unfinished:
        if time.monotonic() >= deadline:
            raise TransientError(
                f"dead-letter topic {topic} partitions {sorted(unfinished)} were not read "
                "to the end in time; the broker is slow or unavailable"
            )
        for msg in consumer.consume(num_messages=1000, timeout=0.1):
            partition, offset, error = msg.partition(), msg.offset(), msg.error()
            if partition is None or partition not in records:
                continue
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    unfinished.discard(partition)
                elif error.fatal():
                    raise TransientError(f"reading {topic} failed: {error.str()}")
                else:
                    logger.warning("dead-letter read error topic=%s error=%s", topic, error)
                continue
            if offset is None:
                continue
            next_offset[partition] = offset + 1
            # The payload is not kept: the API never shows it.
            records[partition].append(
                parse_record(partition, offset, msg.key(), None, msg.headers())
            )
        for partition in list(unfinished):
            try:
                _, high = consumer.get_watermark_offsets(
                    TopicPartition(topic, partition), cached=True
                )
            except (KafkaException, TypeError):  # TypeError: None before any fetch
                continue
            if high >= 0 and next_offset[partition] >= high:
                unfinished.discard(partition)
    return records


def _text(error: object) -> str:
    if isinstance(error, KafkaError):
        return str(error.str())
    return "no partitions" if error is None else str(error)
