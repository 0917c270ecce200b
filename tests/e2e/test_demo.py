"""``make demo`` (scripts/demo), as a person runs it: live numbers for every ICB within a
minute, a dashboard URL whose token works, and Ctrl-C stops everything it started."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from gapwatch.settings import repo_root
from tests.stackenv import stack_env

pytestmark = pytest.mark.integration

DASHBOARD = re.compile(r"^dashboard: (http://127\.0\.0\.1:\d+)/#token=([\w.-]+)$")

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
    dashboard: tuple[str, str] | None = None
    output: list[str] = []
    try:
        assert demo.stdout is not None
        while time.monotonic() - started < 90:
            line = demo.stdout.readline()
            if not line:
                break
            output.append(line)
            link = DASHBOARD.match(line.strip())
            if link:
                dashboard = (link.group(1), link.group(2))
            match = ROW.match(line)
            if match:
                seen[match.group(1)] = int(match.group(2))
                if len(seen) == 42 and all(n > 0 for n in seen.values()):
                    break
        elapsed = time.monotonic() - started
        assert len(seen) == 42, "".join(output[-60:])
        assert all(n > 0 for n in seen.values()), seen
        assert elapsed < 60, f"live numbers for every ICB took {elapsed:.0f}s"
        assert dashboard is not None, "no dashboard URL with a token:\n" + "".join(output[:40])
        api, token = dashboard
        assert api == f"http://127.0.0.1:{env['GAPWATCH_API_PORT']}"
        answer = httpx.get(f"{api}/v1/icbs", headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 200 and len(answer.json()) == 42
        print(f"demo: live numbers for all 42 ICBs after {elapsed:.1f}s")
    finally:
        os.killpg(demo.pid, signal.SIGINT)
        try:
            rest, _ = demo.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(demo.pid, signal.SIGKILL)
            raise
    assert "stopping" in rest
    assert not (tmp_path / "dev-token").exists(), "the demo's token outlived its stack"
    for part in ("ingest", "api"):
        assert not (tmp_path / f"{part}.pid").exists(), f"{part} still recorded as running"
