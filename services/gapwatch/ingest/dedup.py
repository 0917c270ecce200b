"""Which event ids a partition has already counted: producer duplicates count once.

Per partition the index holds a 64-bit key per counted ``event_id`` (the UUID's 128 bits
mixed down with splitmix64: a false "duplicate" needs two different ids to collide,
about n / 2**64 per event for an index of n ids, ~5e-13 at ten million) and the day it
may be forgotten. An id is remembered for the horizon after its event time or after its
message was produced, whichever is later, so a late event's duplicates are caught too;
memory is therefore bounded by one horizon of traffic (8 days by default): about 12 bytes
an id in memory, 8 in Redis.

The keys sit in a few sorted numpy runs (a small log-structured merge: a new chunk's keys
form a run, neighbouring runs merge when of similar size), so a chunk of ten thousand
ids is checked with a handful of vectorised binary searches rather than ten thousand
Python set probes, and a million ids take ~12 MB instead of ~90 MB as Python ints.

Forgetting follows the partition's own clock: the newest message timestamp seen, not
the wall clock, so replaying a partition (a rebuild) makes the same decisions as the
first pass. The index is not thread-safe: the sink serialises its use.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from gapwatch.core.windows import DAY_MS

__all__ = ["SeenIds", "event_keys", "expiry_days"]

Keys = npt.NDArray[np.uint64]
Days = npt.NDArray[np.int32]

# Hex digit -> value for every ASCII byte (the ids were validated as UUIDs already).
_HEX = np.zeros(256, dtype=np.uint64)
for _i, _c in enumerate(b"0123456789abcdef"):
    _HEX[_c] = _i
for _i, _c in enumerate(b"ABCDEF"):
    _HEX[_c] = 10 + _i
# Columns of the 32 hex digits in "8-4-4-4-12".
_DIGITS = np.array([i for i in range(36) if i not in (8, 13, 18, 23)])
_SHIFTS = np.arange(60, -4, -4, dtype=np.uint64)


def _mix(z: Keys) -> Keys:
    """splitmix64's finaliser: every input bit affects every output bit."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def event_keys(event_ids: Sequence[str]) -> Keys:
    """64-bit keys of UUID-shaped event ids (case-insensitive, as UUIDs are)."""
    if not event_ids:
        return np.empty(0, dtype=np.uint64)
    raw = np.frombuffer("".join(event_ids).encode("ascii"), dtype=np.uint8)
    nibbles = _HEX[raw.reshape(len(event_ids), 36)[:, _DIGITS]]
    high = np.bitwise_or.reduce(nibbles[:, :16] << _SHIFTS, axis=1)
    low = np.bitwise_or.reduce(nibbles[:, 16:] << _SHIFTS, axis=1)
    with np.errstate(over="ignore"):
        keys: Keys = _mix(_mix(high) ^ low)
    return keys


def expiry_days(
    occurred_ms: npt.NDArray[np.int64], produced_ms: npt.NDArray[np.int64], horizon_ms: int
) -> Days:
    """The UTC day (days since 1970) after which each id may be forgotten."""
    last = np.maximum(occurred_ms, produced_ms) + horizon_ms
    days: Days = (last // DAY_MS).astype(np.int32)
    return days


@dataclass
class _Partition:
    runs: list[tuple[Keys, Days]] = field(default_factory=list)
    """Sorted key runs with each key's expiry day; older (larger) runs first."""
    forgotten_before: int = 0
    """Entries expiring before this day have been dropped."""

    def contains(self, queries: Keys) -> npt.NDArray[np.bool_]:
        """``queries`` must be sorted (binary searches then walk forward)."""
        found = np.zeros(len(queries), dtype=bool)
        for keys, _ in self.runs:
            if len(keys) == 0:
                continue
            at = np.searchsorted(keys, queries)
            at[at == len(keys)] = len(keys) - 1
            found |= keys[at] == queries
        return found

    def add(self, keys: Keys, days: Days) -> None:
        order = np.argsort(keys, kind="stable")
        self.runs.append((keys[order], days[order]))
        while len(self.runs) > 1 and len(self.runs[-2][0]) <= 2 * len(self.runs[-1][0]):
            (k1, d1), (k2, d2) = self.runs[-2], self.runs[-1]
            merged_keys, merged_days = np.concatenate((k1, k2)), np.concatenate((d1, d2))
            order = np.argsort(merged_keys, kind="stable")
            self.runs[-2:] = [(merged_keys[order], merged_days[order])]

    def forget_before(self, day: int) -> None:
        if day <= self.forgotten_before:
            return
        kept = []
        for keys, days in self.runs:
            live = days >= day
            if live.all():
                kept.append((keys, days))
            elif live.any():
                kept.append((keys[live], days[live]))
        self.runs = kept
        self.forgotten_before = day

    @property
    def entries(self) -> int:
        return sum(len(k) for k, _ in self.runs)

    @property
    def nbytes(self) -> int:
        return sum(k.nbytes + d.nbytes for k, d in self.runs)


class SeenIds:
    def __init__(self, horizon_ms: int) -> None:
        self.horizon_ms = horizon_ms
        self._partitions: dict[int, _Partition] = {}

    def loaded(self, partition: int) -> bool:
        return partition in self._partitions

    def load(self, partition: int, stored: Mapping[int, bytes]) -> None:
        """Replace a partition's index with what Redis holds: expiry day -> packed keys
        (little-endian uint64, as ``check_and_add`` returns them)."""
        index = self._partitions[partition] = _Partition()
        blobs = [(day, np.frombuffer(blob, dtype="<u8")) for day, blob in stored.items()]
        if blobs:
            keys = np.concatenate([k for _, k in blobs]).astype(np.uint64)
            days = np.concatenate([np.full(len(k), day, dtype=np.int32) for day, k in blobs])
            index.add(keys, days)

    def forget_all(self) -> None:
        """Drop everything (after a conflict or a rebuild); partitions reload lazily."""
        self._partitions.clear()

    def check_and_add(
        self, partition: int, keys: Keys, days: Days, clock_ms: int
    ) -> tuple[npt.NDArray[np.bool_], dict[int, bytes]]:
        """Which of ``keys`` are new (first occurrence in this call and never seen), and
        the new keys packed per expiry day for storing. ``clock_ms`` is the partition's
        newest message time; entries that expired before its day are dropped first."""
        index = self._partitions.setdefault(partition, _Partition())
        index.forget_before(int(clock_ms // DAY_MS))
        new = np.zeros(len(keys), dtype=bool)
        if len(keys) == 0:
            return new, {}
        unique, first = np.unique(keys, return_index=True)  # sorted, first occurrences
        fresh = ~index.contains(unique)
        new[first[fresh]] = True
        added_keys, added_days = unique[fresh], days[first[fresh]]
        if len(added_keys):
            index.add(added_keys, added_days)
        packed = {
            int(day): added_keys[added_days == day].astype("<u8").tobytes()
            for day in np.unique(added_days)
        }
        return new, packed

    @property
    def entries(self) -> int:
        return sum(p.entries for p in self._partitions.values())

    @property
    def nbytes(self) -> int:
        return sum(p.nbytes for p in self._partitions.values())
