"""``make demo``: a live local stack with a demo scenario.

Brings the stack up, backfills seven days of seeded synthetic history for every ICB,
starts a live publisher, then prints a table of live numbers from the API every few
seconds until Ctrl-C, when everything it started is stopped again.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from typing import Any

from gapwatch.devstack import stack
from gapwatch.settings import Settings

__all__ = ["main"]

BACKFILL_EVENTS = 300_000
LIVE_RATE = 200


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310  # local URL
        return json.loads(response.read())


def _table(api: str) -> tuple[str, bool]:
    """The table, and whether every ICB has numbers yet."""
    icbs = _get(f"{api}/v1/icbs")
    complete = True
    rows = [
        f"{'ICB':5} {'name':44} {'ED 24h':>7} {'Q1/Q5 (95% CI)':>19} {'SII':>9} {'vs England':>11}"
    ]
    for icb in icbs:
        body = _get(f"{api}/v1/icbs/{icb['ods_code']}/indicators/ed_attendance_rate?window=24h")
        gap, bench = body["gap"], body["benchmark"]
        ratio = (
            f"{gap['ratio']:.2f} ({_num(gap['ratio_lower'])}-{_num(gap['ratio_upper'])})"
            if gap["ratio"] is not None
            else "-"
        )
        sii = f"{gap['sii']:9.0f}" if gap["sii"] is not None else f"{'-':>9}"
        complete = complete and body["total"]["numerator"] > 0
        rows.append(
            f"{icb['ods_code']:5} {icb['name'][:44]:44} {body['total']['numerator']:7d} "
            f"{ratio:>19} {sii} {bench['assessment']:>11}"
        )
    return "\n".join(rows), complete


def _num(value: float | None) -> str:
    return "?" if value is None else f"{value:.2f}"


def main() -> int:
    settings = Settings()
    api = f"http://127.0.0.1:{settings.api.port}"
    gapwatch = [sys.executable, "-m", "gapwatch"]
    stack.up(settings)
    live: subprocess.Popen[bytes] | None = None
    try:
        print(f"backfilling {BACKFILL_EVENTS:,} events over 7 days (seed 42) ...", flush=True)
        subprocess.run(
            [
                *gapwatch,
                "publish",
                "--backfill-days",
                "7",
                "--count",
                str(BACKFILL_EVENTS),
                "--seed",
                "42",
            ],
            check=True,
        )
        log = (stack.run_dir() / "logs" / "publisher.log").open("ab")
        live = subprocess.Popen(
            [*gapwatch, "publish", "--rate", str(LIVE_RATE), "--seed", "43"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=os.environ.copy(),
        )
        print(f"live publisher: {LIVE_RATE} events/s (log {log.name})")
        print(f"API docs: {api}/docs   metrics: {api}/metrics   Ctrl-C stops everything\n")
        while True:
            complete = False
            try:
                table, complete = _table(api)
                print(
                    time.strftime("%H:%M:%S"),
                    "ED attendance rate per 100,000/yr, last 24h, "
                    "by national IMD quintile (1 = most deprived)",
                )
                print(table, flush=True)
            except (urllib.error.URLError, OSError, KeyError) as exc:
                print(f"API not answering yet: {exc}", flush=True)
            # Refresh quickly while the backfill is still being counted.
            time.sleep(15 if complete else 3)
    except KeyboardInterrupt:
        print("\nstopping ...")
    finally:
        if live is not None and live.poll() is None:
            live.send_signal(signal.SIGINT)
            try:
                live.wait(20)
            except subprocess.TimeoutExpired:
                live.kill()
        stack.down(settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
