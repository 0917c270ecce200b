"""Ports: what the core needs from the outside world, as Protocols.

Adapters implement them (``adapters.redis_store``); tests use in-memory fakes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from gapwatch.core.windows import Bucket

__all__ = ["CountReader", "DayReader", "FreshnessRow"]


@dataclass(frozen=True, slots=True)
class FreshnessRow:
    """A trust feed's freshness: newest event time, newest write, recent volume."""

    provider_code: str
    last_event_ms: int | None
    last_received_ms: int | None
    events_last_hour: int


class CountReader(Protocol):
    async def sum_counts(self, icbs: Sequence[str], buckets: Sequence[Bucket]) -> dict[str, int]:
        """Sum of every field over the buckets of the given ICBs."""
        ...

    async def lsoa_counts(
        self, icb: str, day_starts: Sequence[int], measure: str
    ) -> dict[str, int]:
        """LSOA 2021 code -> count of ``measure`` (a rate numerator) over the given days
        (start ms) of one ICB, from the per-LSOA day buckets; LSOAs with none absent."""
        ...

    async def versions(self) -> Mapping[str, str]:
        """ICB -> an id of the last write to any of its buckets (absent: never written)."""
        ...

    async def freshness(self, now_ms: int) -> Mapping[str, FreshnessRow]: ...

    async def ping(self) -> bool: ...


class DayReader(Protocol):
    """Day buckets by write id, for the gap series (``alerting.gap_book``)."""

    async def day_versions(self) -> dict[tuple[str, int], str]:
        """(ICB, day start ms) -> id of the last write to that day bucket."""
        ...

    async def day_versions_of(self, icb: str, days: Sequence[int]) -> dict[tuple[str, int], str]:
        """The same for one ICB's given days."""
        ...

    async def read_day_fields(
        self, buckets: Sequence[tuple[str, int]], fields: Sequence[str]
    ) -> list[list[int]]:
        """The given fields of each (ICB, day) bucket, 0 where absent."""
        ...
