"""Window sums cached on the ICBs' write ids.

Summing a 28-day window reads ~50 hashes of hundreds of fields each; doing that on every
request would cost tens of milliseconds. Every write stamps the ICBs it touched with a
fresh id (``RedisStore.versions``), so a window's sum is reused until that ICB is
written again: one HMGET per request. A sum read while a write lands may already
include that write; the next request sees the new id and re-reads, so a cached sum is
never older than the ids it was checked against. (Per ICB rather than per bucket keeps
the check to one small read; a write to any of the ICB's buckets re-reads the window.)
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

from gapwatch.core.ports import CountReader
from gapwatch.core.windows import Bucket

__all__ = ["WindowCounts", "WindowSums"]


@dataclass(frozen=True, slots=True)
class WindowCounts:
    counts: dict[str, int]
    version: str
    """Changes whenever any bucket of the window is written (a short digest)."""


_WindowKey = tuple[tuple[str, ...], tuple[Bucket, ...]]


class WindowSums:
    """An LRU of window sums keyed by (ICBs, buckets), valid while the ids match."""

    def __init__(self, store: CountReader, max_windows: int = 256) -> None:
        self._store = store
        self._max = max_windows
        self._cache: OrderedDict[_WindowKey, WindowCounts] = OrderedDict()
        self.hits = 0
        self.misses = 0

    async def get(self, icbs: Sequence[str], buckets: Sequence[Bucket]) -> WindowCounts:
        key = (tuple(icbs), tuple(buckets))
        versions = await self._store.versions(key[0])
        version = _digest(versions)
        cached = self._cache.get(key)
        if cached is not None and cached.version == version:
            self._cache.move_to_end(key)
            self.hits += 1
            return cached
        self.misses += 1
        fresh = WindowCounts(await self._store.sum_counts(key[0], key[1]), version)
        self._cache[key] = fresh
        self._cache.move_to_end(key)
        while len(self._cache) > self._max:
            self._cache.popitem(last=False)
        return fresh


def _digest(versions: Sequence[str | None]) -> str:
    joined = "|".join(v or "-" for v in versions)
    return hashlib.blake2b(joined.encode(), digest_size=12).hexdigest()
