"""Reconciliation: every event read is counted, a duplicate, or dead-lettered.

The ingest write stores, per partition and in the same atomic step as the counts, how
many messages and events it consumed and what became of each event. For every
partition ``consumed = counted + duplicates + dead_lettered`` must hold exactly; a
partition where it does not has lost or double-counted something.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["KINDS", "PartitionBalance", "balances"]

KINDS = ("messages", "consumed", "counted", "duplicates", "dead_lettered")


@dataclass(frozen=True, slots=True)
class PartitionBalance:
    partition: str
    """``<topic>:<partition>``."""
    messages: int
    consumed: int
    counted: int
    duplicates: int
    dead_lettered: int
    next_offset: int | None
    """The next offset to read, stored with the counts (None: no offset stored)."""

    @property
    def accounted(self) -> int:
        return self.counted + self.duplicates + self.dead_lettered

    @property
    def balanced(self) -> bool:
        # Every write that stores an offset adds at least one message to the tallies.
        stored_together = self.next_offset is not None and self.messages > 0
        return stored_together and self.consumed == self.accounted


def balances(tallies: Mapping[str, int], offsets: Mapping[str, int]) -> list[PartitionBalance]:
    """One balance per partition found in either the tallies or the stored offsets.

    ``tallies`` maps ``"<topic>:<partition>:<kind>"`` to a total, ``offsets`` maps
    ``"<topic>:<partition>"`` to the next offset. A partition with tallies but no stored
    offset (or the reverse) is unbalanced: the two are always written together.
    """
    totals: dict[str, dict[str, int]] = {key: {} for key in offsets}
    for key, value in tallies.items():
        partition, _, kind = key.rpartition(":")
        if kind in KINDS and partition:
            totals.setdefault(partition, {})[kind] = value
    return [
        PartitionBalance(
            partition,
            messages=found.get("messages", 0),
            consumed=found.get("consumed", 0),
            counted=found.get("counted", 0),
            duplicates=found.get("duplicates", 0),
            dead_lettered=found.get("dead_lettered", 0),
            next_offset=offsets.get(partition),
        )
        for partition, found in sorted(totals.items(), key=lambda item: _order(item[0]))
    ]


def _order(partition: str) -> tuple[str, int]:
    topic, _, number = partition.rpartition(":")
    return (topic, int(number)) if number.isdigit() else (partition, -1)
