"""Duplicates and ``gapwatch rebuild`` through the public interfaces, on the live stack:
a trust sends a seeded day of events, then sends the same events again (a re-sent
file); an operator then rebuilds the store by replay. Counts must be identical after
each step, to the last field of every bucket."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import redis

from gapwatch.publisher.scenario import Scenario, ScenarioConfig
from gapwatch.publisher.world import load_scenario_data
from gapwatch.settings import repo_root

pytestmark = pytest.mark.integration

GAPWATCH = str(repo_root() / ".venv" / "bin" / "gapwatch")
EVENTS = 3000


def _gapwatch(
    env: dict[str, str], *args: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [GAPWATCH, *args], env=env, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture()
def feed_file(tmp_path: Path, real_refdata_dir: Path) -> Path:
    """A trust's file of a seeded quarter-day of events (sent twice: a re-sent file)."""
    scenario = Scenario(load_scenario_data(real_refdata_dir), ScenarioConfig(seed=11))
    path = tmp_path / "feed.jsonl"
    now_ms = time.time_ns() // 1_000_000
    events = scenario.backfill(EVENTS, 0.25, now_ms)
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    return path


def _publish(env: dict[str, str], feed: Path) -> None:
    sent = _gapwatch(env, "publish", "--from-file", str(feed))
    assert sent.returncode == 0, sent.stderr[-2000:]


def _tally(client: redis.Redis, namespace: str) -> dict[str, int]:
    totals: dict[str, int] = {}
    for field, value in client.hgetall(f"gw:{{{namespace}}}:tally").items():
        kind = field.decode().rpartition(":")[2]
        totals[kind] = totals.get(kind, 0) + int(value)
    return totals


def _wait_consumed(client: redis.Redis, namespace: str, expected: int) -> dict[str, int]:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        tally = _tally(client, namespace)
        if tally.get("consumed", 0) >= expected:
            return tally
        time.sleep(0.3)
    raise AssertionError(f"consumed {_tally(client, namespace)} after 90 s, wanted {expected}")


def _counts(client: redis.Redis, namespace: str) -> dict[bytes, dict[bytes, bytes]]:
    keys = sorted(client.scan_iter(f"gw:{{{namespace}}}:c:*", count=1000))
    return {key: client.hgetall(key) for key in keys}


def test_a_resent_file_counts_once_and_a_rebuild_reproduces_every_count(
    stack: dict[str, str], redis_url: str, namespace: str, feed_file: Path
) -> None:
    client = redis.Redis.from_url(redis_url)
    readyz = f"http://127.0.0.1:{stack['GAPWATCH_INGEST_WEB_PORT']}/readyz"

    _publish(stack, feed_file)
    first = _wait_consumed(client, namespace, EVENTS)
    assert first == {**first, "counted": EVENTS, "duplicates": 0, "dead_lettered": 0}
    counts = _counts(client, namespace)
    assert counts, "nothing was counted"

    _publish(stack, feed_file)  # the same events again: same ids, keys, partitions
    again = _wait_consumed(client, namespace, 2 * EVENTS)
    assert again == {**again, "counted": EVENTS, "duplicates": EVENTS, "dead_lettered": 0}
    assert _counts(client, namespace) == counts

    rebuilt = _gapwatch(stack, "rebuild", "--yes", "--wait", readyz, "--timeout", "120")
    assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
    after: dict[str, Any] = _tally(client, namespace)
    assert after == {**after, "consumed": 2 * EVENTS, "counted": EVENTS, "duplicates": EVENTS}
    assert _counts(client, namespace) == counts
    reconciled = _gapwatch(stack, "reconcile", "--require-data")
    assert reconciled.returncode == 0, reconciled.stdout + reconciled.stderr


def test_rebuild_refuses_without_yes() -> None:
    refused = _gapwatch(dict(os.environ), "rebuild")
    assert refused.returncode == 2
    assert "--yes" in refused.stderr
