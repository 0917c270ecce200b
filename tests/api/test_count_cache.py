"""The write-id snapshot and window sums behind the API's caches."""

from __future__ import annotations

import asyncio

from gapwatch.api.answers import tick_for
from gapwatch.api.count_cache import Versions, WindowSums
from gapwatch.core.errors import TransientError
from gapwatch.core.windows import DAY_MS, HOUR_MS, Bucket, Window
from tests.api.conftest import MemoryStore, profile

DAY = Bucket("d", 0)


def test_write_ids_are_reread_only_when_older_than_the_max_age():
    now = [0.0]
    reads: list[int] = []
    ids = {"QOP": "a"}

    async def read_all() -> dict[str, str]:
        reads.append(1)
        await asyncio.sleep(0)
        return dict(ids)

    async def scenario() -> None:
        versions = Versions(read_all, max_age_ms=250, clock=lambda: now[0])
        assert await versions.of(["QOP", "QHL"]) == ("a", None)  # first read is awaited
        ids["QOP"] = "b"
        now[0] = 0.2
        assert await versions.of(["QOP"]) == ("a",)  # 200 ms old: still used
        now[0] = 0.3
        # Old but under twice the max age: answered at once, refreshed behind the scenes.
        assert await versions.of(["QOP"]) == ("a",)
        await asyncio.sleep(0.01)
        assert await versions.of(["QOP"]) == ("b",)
        # Over twice the max age: wait; many requests at once share one read.
        ids["QOP"] = "c"
        now[0] = 1.0
        seen = await asyncio.gather(*(versions.of(["QOP"]) for _ in range(20)))
        assert set(seen) == {("c",)}

    asyncio.run(scenario())
    assert len(reads) == 3


def test_a_failed_read_reaches_every_waiting_request():
    async def read_all() -> dict[str, str]:
        raise TransientError("redis unavailable: connection refused")

    async def scenario() -> None:
        versions = Versions(read_all, max_age_ms=250)
        results = await asyncio.gather(
            *(versions.of(["QOP"]) for _ in range(3)), return_exceptions=True
        )
        assert all(isinstance(r, TransientError) for r in results)

    asyncio.run(scenario())


def test_a_window_sum_is_reused_while_its_ids_match():
    store = MemoryStore()
    store.add(1_000, profile("1"), ("ed_arrival",))

    async def scenario() -> None:
        sums = WindowSums(store)
        first = await sums.get(["QOP"], [DAY], ("v1",))
        store.add(2_000, profile("1"), ("ed_arrival",))
        assert await sums.get(["QOP"], [DAY], ("v1",)) is first  # same id: not re-read
        second = await sums.get(["QOP"], [DAY], ("v2",))
        assert second.counts["ed_arrival|imd_decile|2"] == 2
        assert (sums.hits, sums.misses) == (1, 2)

    asyncio.run(scenario())


def test_rates_count_elapsed_time_in_thousandths_of_the_window():
    assert tick_for(Window(0, HOUR_MS)) == 60_000  # never below a minute
    assert tick_for(Window(0, 28 * DAY_MS)) == 2_419_000  # 40.3 minutes, whole seconds
    assert tick_for(Window(0, DAY_MS)) == 86_000
