"""Window sums cached on the ICBs' write ids.

Summing a 28-day window reads ~50 hashes of hundreds of fields each; doing that on every
request would cost tens of milliseconds. Every write stamps the ICBs it touched with a
fresh id (``RedisStore.versions``), so a window's sum is reused until that ICB is
written again. (Per ICB rather than per bucket keeps the check small; a write to any of
the ICB's buckets re-reads the window.)

The ids themselves are read at most every ``max_age_ms`` (default 250 ms) by whichever
request finds them old, not on every request: a popular dashboard then costs no Redis
read at all, and an answer is at most that old, far inside the 2 s from event to screen.
A sum read while a write lands may already include that write; the next id read sees
the new id and re-reads, so a cached sum is never older than the ids it carries.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

from gapwatch.core.ports import CountReader
from gapwatch.core.windows import Bucket

__all__ = [
    "CachedAnswer",
    "CachedArea",
    "RequestKey",
    "ResponseCache",
    "Versions",
    "WindowCounts",
    "WindowSums",
]


class Versions:
    """A snapshot of every ICB's write id, refreshed when older than ``max_age_ms``.

    One read at a time, shared: every request that finds the snapshot old awaits the same
    read and all resume together (a lock would wake them one loop turn apart, a convoy
    that queued requests for hundreds of milliseconds under load). While a refresh is
    running, requests use the snapshot as it is unless it is over twice ``max_age_ms``
    old, so a busy server never stalls on it.
    """

    def __init__(
        self,
        read_all: Callable[[], Awaitable[Mapping[str, str]]],
        max_age_ms: float = 250.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._read_all = read_all
        self._max_age_s = max_age_ms / 1000
        self._clock = clock
        self._ids: Mapping[str, str] = {}
        self._read_at = float("-inf")
        self._pending: asyncio.Task[None] | None = None
        self.reads = 0

    async def of(self, icbs: Sequence[str]) -> tuple[str | None, ...]:
        age = self._clock() - self._read_at
        if age >= self._max_age_s:
            pending = self._pending
            if pending is None:
                pending = self._pending = asyncio.get_running_loop().create_task(self._read())
            if age >= 2 * self._max_age_s:
                await asyncio.shield(pending)
        ids = self._ids
        return tuple(ids.get(icb) for icb in icbs)

    async def _read(self) -> None:
        try:
            started = self._clock()
            self._ids = await self._read_all()
            self._read_at = started
            self.reads += 1
        finally:
            self._pending = None


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

    async def get(
        self, icbs: Sequence[str], buckets: Sequence[Bucket], versions: Sequence[str | None]
    ) -> WindowCounts:
        """The sum over ``buckets`` of ``icbs``, whose current write ids are ``versions``."""
        key = (tuple(icbs), tuple(buckets))
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


RequestKey = tuple[str, bytes]
"""(path, raw query string) of a GET."""


@dataclass(frozen=True, slots=True)
class CachedArea:
    code: str
    icbs: tuple[str, ...]
    """The ICB slots the answer reads (England's benchmark slot is added by the reader)."""
    route: object
    """The matched route, so request metrics keep their route label."""


@dataclass(frozen=True, slots=True)
class CachedAnswer:
    tick_ms: int
    """Rates' elapsed time is counted in steps of this (see ``answers.tick_for``)."""
    stamp_ms: int
    """The step the answer was computed for: valid while ``now - now % tick_ms`` is it."""
    body: bytes


class ResponseCache:
    """Serialised answers by (area, request, write ids); small LRU."""

    def __init__(self, size: int = 1024) -> None:
        self._size = size
        self._items: OrderedDict[tuple[object, ...], CachedAnswer] = OrderedDict()
        self._areas: OrderedDict[RequestKey, CachedArea] = OrderedDict()

    def remember(self, request: RequestKey, area: CachedArea) -> None:
        """Which area (and route) a request reads, so ``fast_path`` can find its answer."""
        self._areas[request] = area
        self._areas.move_to_end(request)
        while len(self._areas) > self._size:
            self._areas.popitem(last=False)

    def area_of(self, request: RequestKey) -> CachedArea | None:
        return self._areas.get(request)

    def get(self, key: tuple[object, ...], now_ms: int) -> bytes | None:
        found = self._items.get(key)
        if found is None or now_ms - now_ms % found.tick_ms != found.stamp_ms:
            return None
        self._items.move_to_end(key)
        return found.body

    def put(self, key: tuple[object, ...], answer: CachedAnswer) -> None:
        self._items[key] = answer
        self._items.move_to_end(key)
        while len(self._items) > self._size:
            self._items.popitem(last=False)
