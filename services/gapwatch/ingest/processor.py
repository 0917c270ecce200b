"""One chunk of Kafka messages -> counts, dead letters and tallies. No I/O.

Every event read from a message ends in exactly one place: counted, a duplicate of an
event already counted (same ``event_id``: see ``dedup``), or dead-lettered with a
reason. Per partition the tallies satisfy ``consumed == counted + duplicates +
dead_lettered``, and they are stored atomically with the counts.

A dead letter's ``detail`` goes into a Kafka header, which anyone who reads the topic
can see. So it is made safe here, in one place (``header_detail``), whatever produced
it: cut short, ASCII only, NHS numbers and postcodes redacted. An undecodable
message's detail also loses any quoted literal, which could carry the message's bytes.
The payload itself stays as sent, so the letter can be re-published.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gapwatch.adapters.avro_codec import AvroCodec
from gapwatch.core.counting import BucketKey, with_england
from gapwatch.core.enrich import enrich
from gapwatch.core.errors import DecodeError
from gapwatch.core.identifiers import redact
from gapwatch.core.measures import measures_for
from gapwatch.core.refdata import ReferenceData
from gapwatch.core.validation import Limits, validate
from gapwatch.ingest.dedup import SeenIds, event_keys, expiry_days
from gapwatch.ingest.vector_counting import VectorAccumulator

__all__ = [
    "DETAIL_MAX_CHARS",
    "ChunkProcessor",
    "ChunkResult",
    "DeadLetter",
    "InMessage",
    "PartitionTally",
    "header_detail",
]

DETAIL_MAX_CHARS = 500
"""Longest detail kept, in ASCII characters. It is under the 1,000 bytes of the
``gapwatch.error_detail`` header, so the header never cuts a detail: a cut could leave
ten digits bounded that were not bounded before."""
_QUOTED = re.compile(r"b'[^']*'|b\"[^\"]*\"|'[^']{13,}'|\"[^\"]{13,}\"")
"""Byte-string literals and longer quoted strings in a decoder's error text: payload
content, not explanation (a short one such as 'utf-8' stays)."""


def header_detail(detail: str, *, undecodable: bool = False) -> str:
    """``detail`` made safe for a dead-letter header: no quoted payload content (for an
    undecodable message), ASCII (others escaped), at most ``DETAIL_MAX_CHARS``
    characters, then redacted. Redacting comes last, on exactly the text that is kept,
    and it never lengthens the text."""
    if undecodable:
        detail = _QUOTED.sub("<bytes>", detail)
    ascii_text = detail.encode("ascii", "backslashreplace").decode("ascii")
    return redact(ascii_text[:DETAIL_MAX_CHARS])


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
    duplicates: int = 0
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
    seen: dict[tuple[int, int], bytes] = field(default_factory=dict)
    """(partition, expiry day) -> event-id keys counted for the first time (stored with
    the counts so the de-duplication index survives restarts)."""

    @property
    def counted(self) -> int:
        return sum(t.counted for t in self.partitions.values())

    @property
    def consumed(self) -> int:
        return sum(t.consumed for t in self.partitions.values())


@dataclass(slots=True)
class _Valid:
    """The valid events of a chunk, in order, as columns. Not a list of per-event
    tuples: a hundred thousand tuples holding a dict each stay tracked by the garbage
    collector and trigger full collections of the whole heap twice per chunk; lists of
    ints and dicts of plain values are not tracked per event."""

    partitions: list[int] = field(default_factory=list)
    sent_ms: list[int] = field(default_factory=list)
    """The message's time (the producer's, capped at now)."""
    records: list[dict[str, Any]] = field(default_factory=list)


class ChunkProcessor:
    """Decode, validate, de-duplicate, enrich and count one chunk.

    The de-duplication index is updated as the chunk is prepared (it describes the
    state once this chunk is stored); whoever drives the processor must drop it
    (``seen.forget_all()``) whenever a prepared chunk is discarded instead of stored.
    """

    def __init__(
        self,
        codec: AvroCodec,
        ref: ReferenceData,
        limits: Limits,
        hour_retention_ms: int,
        seen: SeenIds,
    ) -> None:
        self._codec = codec
        self._ref = ref
        self._limits = limits
        self._hour_retention_ms = hour_retention_ms
        self.seen = seen

    def process(self, messages: Sequence[InMessage], now_ms: int) -> ChunkResult:
        dead: list[DeadLetter] = []
        tallies: dict[int, PartitionTally] = {}
        produced: list[int] = []
        valid = self._decode_and_validate(messages, now_ms, tallies, dead, produced)
        first, seen = self._first_occurrences(valid)
        acc = VectorAccumulator(now_ms - self._hour_retention_ms)
        quality: Counter[str] = Counter()
        fresh: dict[str, tuple[int, int]] = {}
        ref, add, fresh_get = self._ref, acc.add, fresh.get  # bound once: per-event loop
        for partition, record, is_first in zip(valid.partitions, valid.records, first, strict=True):
            tally = tallies[partition]
            if not is_first:
                tally.duplicates += 1
                continue
            profile = enrich(record, ref)
            if profile.quality:
                quality.update(profile.quality)
            occurred: int = record["occurred_at"]
            add(occurred, profile, measures_for(record, record["age_years"]))
            tally.counted += 1
            provider: str = record["provider_code"]
            last = fresh_get(provider)
            if last is None:
                fresh[provider] = (occurred, 1)
            else:
                fresh[provider] = (max(occurred, last[0]), last[1] + 1)
        deltas = with_england(acc.deltas())
        return ChunkResult(deltas, dead, tallies, quality, fresh, produced, seen)

    def _decode_and_validate(
        self,
        messages: Sequence[InMessage],
        now_ms: int,
        tallies: dict[int, PartitionTally],
        dead: list[DeadLetter],
        produced: list[int],
    ) -> _Valid:
        """Every valid event with its partition and message time, in order; the rest
        dead-lettered."""
        valid = _Valid()
        limits, codec, keep = self._limits, self._codec, valid.records.append
        for msg in messages:
            tally = tallies.get(msg.partition)
            if tally is None:
                tally = tallies[msg.partition] = PartitionTally(msg.offset, msg.offset)
            tally.last_offset = max(tally.last_offset, msg.offset)
            tally.first_offset = min(tally.first_offset, msg.offset)
            tally.messages += 1
            if msg.timestamp_ms:
                produced.append(msg.timestamp_ms)
            sent = min(msg.timestamp_ms, now_ms) if msg.timestamp_ms else now_ms
            try:
                decoded = codec.decode(msg.value)
            except DecodeError as exc:
                tally.consumed += 1
                tally.dead_lettered += 1
                detail = header_detail(exc.detail, undecodable=True)
                letter = DeadLetter(
                    msg.value, exc.reason, detail, msg.partition, msg.offset, None, msg.key
                )
                dead.append(letter)
                continue
            events = decoded.events
            single = len(events) == 1 and decoded.schema_name.endswith("EncounterEvent")
            tally.consumed += len(events)
            kept = len(valid.records)
            for index, record in enumerate(events):
                rejection = validate(record, now_ms, limits)
                if rejection is None:
                    keep(record)
                    continue
                tally.dead_lettered += 1
                dead.append(
                    DeadLetter(
                        msg.value if single else codec.encode_event(record),
                        rejection.reason,
                        header_detail(rejection.detail),
                        msg.partition,
                        msg.offset,
                        None if single else index,
                        msg.key,
                    )
                )
            kept = len(valid.records) - kept
            valid.partitions += [msg.partition] * kept
            valid.sent_ms += [sent] * kept
        return valid

    def _first_occurrences(self, valid: _Valid) -> tuple[list[bool], dict[tuple[int, int], bytes]]:
        """Whether each valid event is the first with its id in its partition; the new
        ids per (partition, expiry day). Message times, not the wall clock, decide what
        is forgotten, so a replay decides as the first pass did (see dedup)."""
        records = valid.records
        if not records:
            return [], {}
        partitions = np.array(valid.partitions, dtype=np.int32)
        sent = np.array(valid.sent_ms, dtype=np.int64)
        keys = event_keys([r["event_id"] for r in records])
        occurred = np.array([r["occurred_at"] for r in records], dtype=np.int64)
        days = expiry_days(occurred, sent, self.seen.horizon_ms)
        first = np.zeros(len(records), dtype=bool)
        packed: dict[tuple[int, int], bytes] = {}
        for partition in np.unique(partitions):
            mine = partitions == partition
            clock = int(sent[mine].max())
            new, by_day = self.seen.check_and_add(int(partition), keys[mine], days[mine], clock)
            first[mine] = new
            for day, blob in by_day.items():
                packed[(int(partition), day)] = blob
        flags: list[bool] = first.tolist()
        return flags, packed
