"""``make demo`` (scripts/demo), as a person runs it: live numbers for every ICB within a
minute, and Ctrl-C stops everything it started."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from gapwatch.settings import repo_root
from tests.stackenv import stack_env

pytestmark = pytest.mark.integration

# ICB, name, ED arrivals, Q1/Q5 ratio with its 95% CI, SII, assessment against England.
ROW = re.compile(
    r"^(Q[A-Z0-9]{2})\s.*?\s(\d+)\s+(-|[\d.]+ \([\d.?]+-[\d.?]+\))\s+(-?\d+|-)"
    r"\s+(better|similar|worse|not_compared)\s*$"
)


def test_demo_shows_live_numbers_for_every_icb_within_a_minute(
    broker: str, redis_url: str, namespace: str, tmp_path: Path
) -> None:
    env = stack_env(broker, redis_url, namespace, tmp_path)
    env["GAPWATCH_KAFKA_PARTITIONS"] = "12"
    started = time.monotonic()
    demo = subprocess.Popen(
        [str(repo_root() / "scripts" / "demo")],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    seen: dict[str, int] = {}
    output: list[str] = []
    try:
        assert demo.stdout is not None
        while time.monotonic() - started < 90:
            line = demo.stdout.readline()
            if not line:
                break
            output.append(line)
            match = ROW.match(line)
            if match:
                seen[match.group(1)] = int(match.group(2))
                if len(seen) == 42 and all(n > 0 for n in seen.values()):
                    break
        elapsed = time.monotonic() - started
        assert len(seen) == 42, "".join(output[-60:])
        assert all(n > 0 for n in seen.values()), seen
        assert elapsed < 60, f"live numbers for every ICB took {elapsed:.0f}s"
        print(f"demo: live numbers for all 42 ICBs after {elapsed:.1f}s")
    finally:
        os.killpg(demo.pid, signal.SIGINT)
        try:
            rest, _ = demo.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(demo.pid, signal.SIGKILL)
            raise
    assert "stopping" in rest
    for part in ("ingest", "api"):
        assert not (tmp_path / f"{part}.pid").exists(), f"{part} still recorded as running"
