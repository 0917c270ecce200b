"""``make demo``: a live local stack with a demo scenario.

Brings the stack up; backfills 67 days of seeded synthetic history for every ICB in the
background, 60 stable and then 7 in which Greater Manchester's (QOP) most deprived
quintile has ED attendances and emergency admissions climbing 15% of their stable rate
a day (the ``widening_gap`` scenario); starts a live publisher that continues the climb;
then prints a table of live numbers from the API, and the alerts the alerter is firing,
every few seconds until Ctrl-C, when everything it started is stopped again. It reads the
API with the national development token ``scripts/stack up`` issues, and prints the
dashboard's URL with that token in it.

The backfill goes newest first so the table has today's numbers within seconds while
older days are still arriving; the alerter's SPC charts settle once it finishes (about
a minute on a 2-core machine).
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
from datetime import UTC, datetime, timedelta
from typing import Any

from gapwatch.devstack import stack
from gapwatch.devstack.dev_tokens import bearer, dashboard_url, read_token
from gapwatch.devstack.processes import exit_on_sigterm
from gapwatch.settings import Settings

__all__ = ["main"]

BACKFILL_DAYS = 67
BACKFILL_EVENTS = 2_000_000
"""~30,000 events a day: enough that QOP's daily quintile 1 - 5 gap in ED attendance
rate has a day-to-day sd of ~6% of Q1's rate, so the widening clears the SPC limits
(numbers in ``gapwatch.publisher.widening``); ~20 s to generate."""
WIDEN_ICB = "QOP"
WIDEN_DAYS = 7
"""The last 7 closed days widen: a 7-point climb, the last several beyond the limits."""
LIVE_RATE = 200
ALERT_LINES = 8
"""Firing alerts printed under the table; the rest are counted (all at the endpoint)."""


def _get(url: str, token: str) -> Any:
    request = urllib.request.Request(url, headers=bearer(token))  # noqa: S310  # local URL
    with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310  # local URL
        return json.loads(response.read())


def _table(api: str, token: str) -> tuple[str, bool]:
    """The table, and whether every ICB has numbers yet."""
    icbs = _get(f"{api}/v1/icbs", token)
    complete = True
    rows = [
        f"{'ICB':5} {'name':44} {'ED 24h':>7} {'Q1/Q5 (95% CI)':>19} {'SII':>9} {'vs England':>11}"
    ]
    for icb in icbs:
        body = _get(
            f"{api}/v1/icbs/{icb['ods_code']}/indicators/ed_attendance_rate?window=24h", token
        )
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


def _alerts(api: str, token: str) -> str | None:
    """The firing alerts, the widened ICB's and IMD ones first, at most ``ALERT_LINES``;
    None when the alerter's endpoint does not answer (not deployed, or not ready yet)."""
    try:
        alerts = _get(f"{api}/v1/alerts?state=firing", token)
    except (urllib.error.URLError, OSError, ValueError):
        return None
    if not isinstance(alerts, list):
        return None
    rows = []
    for alert in alerts:
        if not isinstance(alert, dict):
            continue
        labels, notes = alert.get("labels") or {}, alert.get("annotations") or {}
        keys = [str(labels.get(k, "?")) for k in ("icb", "indicator", "breakdown", "measure")]
        summary = notes.get("summary") or alert.get("rule", "")
        rank = (keys[0] != WIDEN_ICB, keys[2] != "imd_quintile", keys)
        rows.append((rank, f"  ! {' '.join(keys)}: {summary}"))
    rows.sort()
    ours = sum(1 for (not_ours, *_), _ in rows if not not_ours)
    head = f"alerts firing (from the alerter): {len(rows) or 'none yet'}"
    if rows:
        head += f", {ours} in {WIDEN_ICB}"
    lines = [head, *(line for _, line in rows[:ALERT_LINES])]
    if len(rows) > ALERT_LINES:
        lines.append(f"  ... and {len(rows) - ALERT_LINES} more: {api}/v1/alerts?state=firing")
    return "\n".join(lines)


def _publish_args(widen_from: str) -> list[str]:
    return ["--scenario", "widening_gap", "--widen-icb", WIDEN_ICB, "--widen-from", widen_from]


def _stop(process: subprocess.Popen[bytes] | None) -> None:
    if process is not None and process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()


def main() -> int:
    exit_on_sigterm()  # `kill` stops everything too, not only Ctrl-C
    settings = Settings()
    api = f"http://127.0.0.1:{settings.api.port}"
    gapwatch = [sys.executable, "-m", "gapwatch"]
    stack.up(settings)
    token = read_token(stack.run_dir())
    backfill: subprocess.Popen[bytes] | None = None
    live: subprocess.Popen[bytes] | None = None
    # One date for both publishers, so a run that crosses midnight UTC widens one climb.
    widen_from = (datetime.now(UTC).date() - timedelta(days=WIDEN_DAYS)).isoformat()
    try:
        logs = stack.run_dir() / "logs"
        backfill_log = (logs / "publisher-backfill.log").open("ab")
        print(
            f"backfilling {BACKFILL_EVENTS:,} events over {BACKFILL_DAYS} days (seed 42), "
            f"newest first, in the background: stable, then from {widen_from} the "
            f"{WIDEN_ICB} IMD quintile 1 rates of ED attendance and emergency admission "
            f"climb (--scenario widening_gap; log {backfill_log.name})",
            flush=True,
        )
        backfill = subprocess.Popen(
            [
                *gapwatch,
                "publish",
                "--backfill-days",
                str(BACKFILL_DAYS),
                "--count",
                str(BACKFILL_EVENTS),
                "--seed",
                "42",
                "--newest-first",
                *_publish_args(widen_from),
            ],
            stdout=backfill_log,
            stderr=subprocess.STDOUT,
            env=os.environ.copy(),
        )
        log = (logs / "publisher.log").open("ab")
        live = subprocess.Popen(
            [
                *gapwatch,
                *("publish", "--rate", str(LIVE_RATE), "--seed", "43"),
                *_publish_args(widen_from),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=os.environ.copy(),
        )
        print(f"live publisher: {LIVE_RATE} events/s (log {log.name})")
        print(f"dashboard: {dashboard_url(api, token)}")
        print(f"API docs: {api}/docs   metrics: {api}/metrics   Ctrl-C stops everything")
        print(
            "alerts come from the alerter (SPC on each closed UTC day's gap): "
            f"{api}/v1/alerts?state=firing\n",
            flush=True,
        )
        backfill_reported = False
        while True:
            complete = False
            try:
                table, complete = _table(api, token)
                print(
                    time.strftime("%H:%M:%S"),
                    "ED attendance rate per 100,000/yr, last 24h, "
                    "by national IMD quintile (1 = most deprived)",
                )
                print(table, flush=True)
            except (urllib.error.URLError, OSError, KeyError) as exc:
                print(f"API not answering yet: {exc}", flush=True)
            alerts = _alerts(api, token)
            if alerts is not None:
                print(alerts, flush=True)
            if not backfill_reported and backfill.poll() is not None:
                backfill_reported = True
                print(f"backfill published (exit code {backfill.returncode})", flush=True)
            # Refresh quickly while the backfill is still being published and counted.
            time.sleep(15 if complete and backfill_reported else 3)
    except KeyboardInterrupt:
        print("\nstopping ...")
    finally:
        _stop(backfill)
        _stop(live)
        stack.down(settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
