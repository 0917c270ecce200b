"""What the broker really holds, read back after a scenario, and the tallies it implies.

Faults make the topic's content differ from what was planned: a broker crash can keep a
batch the producer never saw acknowledged (it is then sent again), a replay adds copies.
So the expected per-partition tallies come from reading the topic itself to its end, in
offset order, and looking every payload up in what the harness sent: the first copy of a
valid message in its partition counts, every later copy is duplicates, every copy of an
invalid message is dead-lettered again.

Topics are read to their end with ``gapwatch dlq``'s reader, which finds the end from
fetch responses (Tansu's ListOffsets(latest) is wrong, docs/tansu.md §4); it reads any
topic, not only dead-letter ones.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from gapwatch.core.reconcile import KINDS
from gapwatch.devstack.chaos.stream import Msg
from gapwatch.ingest.dlq import read_dead_letters

__all__ = [
    "DeadLetterCount",
    "TopicContent",
    "TopicTallies",
    "read_dead_letter_sources",
    "read_topic",
    "tallies_of",
]

Stored = tuple[int, int, bytes]
"""(partition, offset, payload) of one message in the topic."""


@dataclass(slots=True)
class TopicTallies:
    """Per partition: kind (``core.reconcile.KINDS``) -> expected total, and next offset."""

    by_partition: dict[int, dict[str, int]] = field(default_factory=dict)
    next_offset: dict[int, int] = field(default_factory=dict)
    unknown_messages: int = 0
    """Messages in the topic the harness never sent (should be impossible)."""

    def total(self, kind: str) -> int:
        return sum(t[kind] for t in self.by_partition.values())


@dataclass(frozen=True, slots=True)
class TopicContent:
    tallies: TopicTallies
    payloads: frozenset[bytes]
    """Every distinct payload stored (an acknowledged message missing here was lost)."""
    complete: bool
    """Every partition was read to its end before the timeout."""


@dataclass(frozen=True, slots=True)
class DeadLetterCount:
    messages: int
    sources: int
    """Distinct (source partition, source offset, batch index): letters re-sent after a
    crash or a rebuild count once here."""
    complete: bool


def read_topic(
    bootstrap: str, topic: str, sent: Mapping[bytes, Msg], timeout_s: float
) -> TopicContent:
    found = read_dead_letters(bootstrap, topic, timeout_s=timeout_s)
    stored = [(r.partition, r.offset, r.payload) for r in found.records]
    return TopicContent(
        tallies_of(stored, sent),
        frozenset(r.payload for r in found.records),
        not found.unfinished,
    )


def read_dead_letter_sources(bootstrap: str, dlq_topic: str, timeout_s: float) -> DeadLetterCount:
    found = read_dead_letters(bootstrap, dlq_topic, timeout_s=timeout_s)
    sources = {(r.source_partition, r.source_offset, r.batch_index) for r in found.records}
    return DeadLetterCount(len(found.records), len(sources), not found.unfinished)


def tallies_of(stored: Iterable[Stored], sent: Mapping[bytes, Msg]) -> TopicTallies:
    """What the worker must tally for a topic holding ``stored`` (any order), given
    what each payload the harness sent contains."""
    out = TopicTallies()
    seen: set[tuple[int, bytes]] = set()
    for partition, offset, payload in sorted(stored, key=lambda s: (s[0], s[1])):
        t = out.by_partition.setdefault(partition, dict.fromkeys(KINDS, 0))
        out.next_offset[partition] = offset + 1
        msg = sent.get(payload)
        if msg is None:
            out.unknown_messages += 1
            continue
        t["messages"] += 1
        t["consumed"] += msg.events
        t["dead_lettered"] += msg.dead
        first = (partition, payload) not in seen
        seen.add((partition, payload))
        t["counted" if first else "duplicates"] += msg.counted
    return out
