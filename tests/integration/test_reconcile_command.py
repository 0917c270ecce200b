"""`gapwatch reconcile` against a real Redis: balanced, tampered, and Redis down."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter

import pytest
import redis

from gapwatch.adapters.redis_store import PartitionCommit, RedisStore
from gapwatch.cli import main
from gapwatch.core.windows import DAY_MS

pytestmark = pytest.mark.integration

NOW = time.time_ns() // 1_000_000
D0 = NOW - NOW % DAY_MS
RETENTION = {"h": 8 * DAY_MS, "d": 400 * DAY_MS}


def _ingest(redis_url: str, namespace: str) -> None:
    async def write() -> None:
        store = RedisStore.from_url(redis_url, namespace)
        epoch, _ = await store.adopt_epoch()
        deltas = {("d", D0, "QOP"): Counter({"ed_arrival|sex|female": 9})}
        # partition 0: 2 messages, 10 events, 9 counted, 1 dead-lettered
        await store.apply(
            "t", [PartitionCommit(0, -1, 2, 2, 10, 9, 1)], deltas, {}, D0, RETENTION, epoch=epoch
        )
        await store.apply(
            "t", [PartitionCommit(3, -1, 1, 1, 5, 5, 0)], deltas, {}, D0, RETENTION, epoch=epoch
        )
        await store.close()

    asyncio.run(write())


@pytest.fixture()
def env(monkeypatch, redis_url, namespace):
    monkeypatch.setenv("GAPWATCH_REDIS_URL", redis_url)
    monkeypatch.setenv("GAPWATCH_REDIS_NAMESPACE", namespace)


def test_balanced_partitions_exit_zero(env, redis_url, namespace, capsys):
    assert main(["reconcile", "--require-data"]) == 1  # nothing ingested yet
    _ingest(redis_url, namespace)
    capsys.readouterr()
    assert main(["reconcile", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["partition"], r["consumed"], r["counted"], r["dead_lettered"]) for r in rows] == [
        ("t:0", 10, 9, 1),
        ("t:3", 5, 5, 0),
    ]
    assert all(r["balanced"] for r in rows)


def test_a_lost_event_makes_it_exit_one(env, redis_url, namespace, capsys):
    _ingest(redis_url, namespace)
    client = redis.Redis.from_url(redis_url)
    client.hincrby(f"gw:{{{namespace}}}:tally", "t:3:counted", -1)
    assert main(["reconcile"]) == 1
    captured = capsys.readouterr()
    assert "MISMATCH in 1 partition(s): t:3" in captured.err
    assert "t:3" in captured.out and "NO" in captured.out


def test_redis_unavailable_exits_two(monkeypatch, capsys):
    monkeypatch.setenv("GAPWATCH_REDIS_URL", "redis://127.0.0.1:1/0")
    assert main(["reconcile"]) == 2
    assert "redis unavailable" in capsys.readouterr().err
