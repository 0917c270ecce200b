"""The Redis adapter against a real Redis: atomic apply, offset compare-and-set, sums."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import pytest

from gapwatch.adapters.redis_store import OffsetConflict, PartitionCommit, RedisStore
from gapwatch.core.windows import DAY_MS, HOUR_MS, Bucket

pytestmark = pytest.mark.integration

NOW = time.time_ns() // 1_000_000
D0 = NOW - NOW % DAY_MS  # recent: keys older than their retention would expire at once
RETENTION = {"h": 8 * DAY_MS, "d": 400 * DAY_MS}


def run(coro):
    return asyncio.run(coro)


def _commit(partition, expected, new, counted=2):
    return PartitionCommit(partition, expected, new, 1, counted, counted, 0)


def test_apply_writes_counts_offsets_and_tallies_atomically(redis_url, namespace):
    async def scenario():
        store = RedisStore.from_url(redis_url, namespace)
        epoch, _ = await store.adopt_epoch()
        deltas = {
            ("d", D0, "QOP"): Counter({"ed_arrival|sex|female": 2}),
            ("h", D0 + HOUR_MS, "QOP"): Counter({"ed_arrival|sex|female": 2}),
        }
        await store.apply(
            "t",
            [_commit(0, -1, 5)],
            deltas,
            {"R0A": (D0 + 5, 2)},
            D0 + 2 * HOUR_MS,
            RETENTION,
            epoch=epoch,
        )
        await store.apply(
            "t", [_commit(0, 5, 9)], deltas, {}, D0 + 2 * HOUR_MS, RETENTION, epoch=epoch
        )
        offsets = await store.load_offsets("t")
        tallies = await store.tallies()
        day = await store.sum_counts(["QOP"], [Bucket("d", D0)])
        both = await store.sum_counts(["QOP", "QHL"], [Bucket("h", D0 + HOUR_MS)])
        epoch = await store.epoch()
        await store.close()
        return offsets, tallies, day, both, epoch

    offsets, tallies, day, both, epoch = run(scenario())
    assert offsets == {0: 9}
    assert tallies["t:0:counted"] == 4 and tallies["t:0:messages"] == 2
    assert day == {"ed_arrival|sex|female": 4}
    assert both == {"ed_arrival|sex|female": 4}
    assert epoch


def test_a_stale_writer_changes_nothing(redis_url, namespace):
    async def scenario():
        store = RedisStore.from_url(redis_url, namespace)
        epoch, _ = await store.adopt_epoch()
        deltas = {("d", D0, "QOP"): Counter({"events|sex|male": 1})}
        await store.apply("t", [_commit(3, -1, 10)], deltas, {}, D0, RETENTION, epoch=epoch)
        with pytest.raises(OffsetConflict) as info:
            # believes nothing is stored yet: e.g. a zombie after a rebalance
            await store.apply(
                "t", [_commit(3, -1, 10), _commit(4, -1, 2)], deltas, {}, D0, RETENTION, epoch=epoch
            )
        counts = await store.sum_counts(["QOP"], [Bucket("d", D0)])
        offsets = await store.load_offsets("t")
        await store.close()
        return info.value, counts, offsets

    conflict, counts, offsets = run(scenario())
    assert conflict.stored == 10
    assert counts == {"events|sex|male": 1}
    assert offsets == {3: 10}  # partition 4 untouched too: all or nothing


def test_count_keys_expire_after_their_retention(redis_url, namespace):
    import redis as sync_redis

    async def scenario():
        store = RedisStore.from_url(redis_url, namespace)
        epoch, _ = await store.adopt_epoch()
        now = 1_795_780_000_000
        hour = now - now % HOUR_MS
        deltas = {("h", hour, "QOP"): Counter({"events|sex|male": 1})}
        await store.apply("t", [_commit(0, -1, 1)], deltas, {}, now, RETENTION, epoch=epoch)
        key = store.counts_key("h", hour, "QOP")
        await store.close()
        return key, hour

    key, hour = run(scenario())
    expire_at = sync_redis.Redis.from_url(redis_url).pexpiretime(key)
    assert expire_at == hour + HOUR_MS + RETENTION["h"]


def test_a_hung_redis_fails_fast_instead_of_hanging():
    """A server that accepts connections but never answers (e.g. a stalled Redis)."""
    import socket

    from gapwatch.core.errors import TransientError

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]

        async def scenario():
            store = RedisStore.from_url(f"redis://127.0.0.1:{port}/0", "hung", timeout_s=0.5)
            started = time.monotonic()
            with pytest.raises(TransientError):
                await store.sum_counts(["QOP"], [Bucket("d", D0)])
            alive = await store.ping()
            return time.monotonic() - started, alive

        elapsed, alive = asyncio.run(scenario())
    assert not alive
    assert elapsed < 5


def test_every_write_stamps_the_icbs_it_touched_with_a_new_version(redis_url, namespace):
    async def scenario():
        store = RedisStore.from_url(redis_url, namespace)
        epoch, _ = await store.adopt_epoch()
        day = Bucket("d", D0)
        assert await store.versions() == {}
        deltas = {("d", D0, "QOP"): Counter({"ed_arrival|sex|female": 2})}
        await store.apply("t", [_commit(0, -1, 1)], deltas, {}, D0, RETENTION, epoch=epoch)
        first = await store.versions()
        assert set(first) == {"QOP"}
        await store.apply("t", [_commit(0, 1, 2)], deltas, {}, D0, RETENTION, epoch=epoch)
        second = await store.versions()
        assert set(second) == {"QOP"} and second["QOP"] != first["QOP"]
        assert await store.sum_counts(["QOP"], [day]) == {"ed_arrival|sex|female": 4}
        await store.close()

    run(scenario())
