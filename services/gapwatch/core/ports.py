"""Ports: what the core needs from the outside world, as Protocols.

Adapters implement them (``adapters.redis_store``); tests use in-memory fakes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from gapwatch.core.windows import Bucket

__all__ = ["CountReader", "FreshnessRow"]


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

    async def versions(self) -> Mapping[str, str]:
        """ICB -> an id of the last write to any of its buckets (absent: never written)."""
        ...

    async def freshness(self, now_ms: int) -> Mapping[str, FreshnessRow]: ...

    async def ping(self) -> bool: ...
