"""One chunk of Kafka messages -> counts, dead letters and tallies. No I/O.

Every event read from a message ends in exactly one place: counted, or dead-lettered
with a reason (duplicates join in a later issue). Per partition the tallies satisfy
``consumed == counted + dead_lettered``, and they are stored atomically with the counts.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from gapwatch.adapters.avro_codec import AvroCodec
from gapwatch.core.counting import BucketKey, with_england
from gapwatch.core.enrich import enrich
from gapwatch.core.errors import DecodeError
from gapwatch.core.measures import measures_for
from gapwatch.core.refdata import ReferenceData
from gapwatch.core.validation import Limits, validate
from gapwatch.ingest.vector_counting import VectorAccumulator

__all__ = ["ChunkProcessor", "ChunkResult", "DeadLetter", "InMessage", "PartitionTally"]


@dataclass(frozen=True, slots=True)
class InMessage:
    partition: int
    offset: int
    timestamp_ms: int | None
    """Kafka CreateTime: when the producer made the message (for end-to-end latency)."""
    value: bytes
    key: bytes | None = None
    """The producer's message key (the trust's code by convention)."""


@dataclass(frozen=True, slots=True)
class DeadLetter:
    payload: bytes
    """The original message bytes; for one bad event inside a batch, that event alone
    re-encoded as an EncounterEvent message so it can be fixed and re-published."""
    reason: str
    detail: str
    partition: int
    offset: int
    batch_index: int | None
    key: bytes | None = None


@dataclass(slots=True)
class PartitionTally:
    first_offset: int
    last_offset: int
    messages: int = 0
    consumed: int = 0
    counted: int = 0
    dead_lettered: int = 0


@dataclass(slots=True)
class ChunkResult:
    deltas: dict[BucketKey, Counter[str]]
    dead_letters: list[DeadLetter]
    partitions: dict[int, PartitionTally]
    quality: Counter[str]
    freshness: dict[str, tuple[int, int]]
    """provider -> (latest occurred_at ms, events counted)."""
    produced_at_ms: list[int] = field(default_factory=list)

    @property
    def counted(self) -> int:
        return sum(t.counted for t in self.partitions.values())

    @property
    def consumed(self) -> int:
        return sum(t.consumed for t in self.partitions.values())


class ChunkProcessor:
    def __init__(
        self, codec: AvroCodec, ref: ReferenceData, limits: Limits, hour_retention_ms: int
    ) -> None:
        self._codec = codec
        self._ref = ref
        self._limits = limits
        self._hour_retention_ms = hour_retention_ms

    def process(self, messages: Sequence[InMessage], now_ms: int) -> ChunkResult:
        acc = VectorAccumulator(now_ms - self._hour_retention_ms)
        dead: list[DeadLetter] = []
        tallies: dict[int, PartitionTally] = {}
        quality: Counter[str] = Counter()
        fresh: dict[str, tuple[int, int]] = {}
        produced: list[int] = []
        ref, limits, codec = self._ref, self._limits, self._codec
        add, fresh_get = acc.add, fresh.get  # bound once: this loop runs per event
        for msg in messages:
            tally = tallies.get(msg.partition)
            if tally is None:
                tally = tallies[msg.partition] = PartitionTally(msg.offset, msg.offset)
            tally.last_offset = max(tally.last_offset, msg.offset)
            tally.first_offset = min(tally.first_offset, msg.offset)
            tally.messages += 1
            if msg.timestamp_ms:
                produced.append(msg.timestamp_ms)
            try:
                decoded = codec.decode(msg.value)
            except DecodeError as exc:
                tally.consumed += 1
                tally.dead_lettered += 1
                dead.append(
                    DeadLetter(
                        msg.value, exc.reason, exc.detail, msg.partition, msg.offset, None, msg.key
                    )
                )
                continue
            events = decoded.events
            single = len(events) == 1 and decoded.schema_name.endswith("EncounterEvent")
            tally.consumed += len(events)
            counted = 0
            for index, record in enumerate(events):
                rejection = validate(record, now_ms, limits)
                if rejection is not None:
                    tally.dead_lettered += 1
                    payload = msg.value if single else codec.encode_event(record)
                    dead.append(
                        DeadLetter(
                            payload,
                            rejection.reason,
                            rejection.detail,
                            msg.partition,
                            msg.offset,
                            None if single else index,
                            msg.key,
                        )
                    )
                    continue
                profile = enrich(record, ref)
                if profile.quality:
                    quality.update(profile.quality)
                occurred: int = record["occurred_at"]
                add(occurred, profile, measures_for(record, record["age_years"]))
                counted += 1
                provider: str = record["provider_code"]
                seen = fresh_get(provider)
                if seen is None:
                    fresh[provider] = (occurred, 1)
                elif occurred > seen[0]:
                    fresh[provider] = (occurred, seen[1] + 1)
                else:
                    fresh[provider] = (seen[0], seen[1] + 1)
            tally.counted += counted
        return ChunkResult(with_england(acc.deltas()), dead, tallies, quality, fresh, produced)
