"""The chaos run's table (for people) and JSON document (for machines)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from gapwatch.devstack.chaos.harness import Report

__all__ = ["LEGEND", "as_json", "as_table"]

LEGEND = """\
events sent   events in messages the broker acknowledged (replays and re-sends included)
counted, duplicates, dead letters
              the worker's tallies in Redis for the scenario's topic
mismatches    0 means exactly-once held. The sum of: (bucket, field) pairs whose Redis
              count differs from the in-process oracle (ChunkProcessor over the unique
              messages); partitions failing reconciliation in Redis; per tally kind
              (messages, consumed, counted, duplicates, dead_lettered) the sum over
              partitions of |Redis - expected from reading the topic back|; partitions
              whose stored offset is not the partition's end; acknowledged messages
              missing from the topic; |distinct DLQ sources - expected dead letters|;
              failed checks (listed below the table)
recover s     the slowest fault's recovery: from the fault's end (worker restarted, Redis
              back, broker back) until every worker's /readyz is ready and more messages
              are stored as read than before the fault; - when there is no fault"""


def _n(value: int) -> str:
    return f"{value:,}"


def as_table(report: Report) -> str:
    head = (
        f"{'scenario':18} {'events sent':>12} {'counted':>11} {'duplicates':>11} "
        f"{'dead letters':>13} {'mismatches':>11} {'recover s':>10} {'wall s':>7}"
    )
    lines = [
        f"chaos run: seed {report.seed}, {report.events:,} events in {report.messages:,} "
        f"messages, offered at {report.rate:,.0f} events/s; setup {report.setup_s} s",
        head,
    ]
    problems: list[str] = []
    for r in report.rows:
        recover = "-" if r.recover_s is None else f"{r.recover_s:.1f}"
        lines.append(
            f"{r.scenario:18} {_n(r.events_sent):>12} {_n(r.counted):>11} "
            f"{_n(r.duplicates):>11} {_n(r.dead_lettered):>13} {r.mismatches:>11} "
            f"{recover:>10} {r.seconds:>7.1f}"
        )
        if "error" in r.detail:
            problems.append(f"{r.scenario}: ERROR {r.detail['error']}")
        breakdown = r.detail.get("mismatch_breakdown", {})
        for check in breakdown.get("failed_checks", []):
            problems.append(f"{r.scenario}: {check}")
        parts = {
            k: v
            for k, v in breakdown.items()
            if k not in ("total", "failed_checks")
            and (sum(v.values()) if isinstance(v, dict) else v)
        }
        if parts:
            problems.append(f"{r.scenario}: mismatches {parts}")
    lines.append(f"total wall time {report.wall_s:.1f} s; mismatches {report.mismatches}")
    if problems:
        lines += ["", *problems]
    return "\n".join([*lines, "", LEGEND])


def as_json(report: Report) -> dict[str, Any]:
    return {
        "seed": report.seed,
        "events": report.events,
        "messages": report.messages,
        "rate_events_per_s": report.rate,
        "setup_s": report.setup_s,
        "wall_s": report.wall_s,
        "mismatches": report.mismatches,
        "scenarios": [asdict(r) for r in report.rows],
        "legend": LEGEND,
    }
