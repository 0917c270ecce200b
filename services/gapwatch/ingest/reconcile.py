"""``gapwatch reconcile``: check that every event read was counted, a duplicate, or
dead-lettered, per partition, from what the ingest write stored in Redis.

Exit codes: 0 balanced, 1 a partition does not balance (or nothing has been ingested
with ``--require-data``), 2 Redis unavailable.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from gapwatch.core.errors import TransientError
from gapwatch.core.reconcile import PartitionBalance, balances
from gapwatch.settings import Settings

__all__ = ["read_balances", "register"]


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "reconcile",
        help="check consumed = counted + duplicates + dead-lettered for every partition",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument(
        "--require-data",
        action="store_true",
        help="also fail when no partition has been ingested yet",
    )
    parser.set_defaults(func=_run)


async def read_balances(settings: Settings) -> list[PartitionBalance]:
    from gapwatch.adapters.redis_store import RedisStore

    store = RedisStore.from_url(settings.redis.url, settings.redis.namespace, timeout_s=10.0)
    try:
        return balances(await store.tallies(), await store.all_offsets())
    finally:
        await store.close()


def _run(args: argparse.Namespace, settings: Settings) -> int:
    try:
        rows = asyncio.run(read_balances(settings))
    except TransientError as exc:
        sys.stderr.write(f"reconcile: {exc}\n")
        return 2
    unbalanced = [r for r in rows if not r.balanced]
    if args.json:
        sys.stdout.write(json.dumps([_as_dict(r) for r in rows], indent=2) + "\n")
    else:
        sys.stdout.write(_table(rows, settings.redis.namespace) + "\n")
    if unbalanced:
        names = ", ".join(r.partition for r in unbalanced)
        sys.stderr.write(f"MISMATCH in {len(unbalanced)} partition(s): {names}\n")
        return 1
    if args.require_data and not rows:
        sys.stderr.write("nothing ingested yet in this namespace\n")
        return 1
    return 0


def _as_dict(row: PartitionBalance) -> dict[str, object]:
    return {
        "partition": row.partition,
        "messages": row.messages,
        "consumed": row.consumed,
        "counted": row.counted,
        "duplicates": row.duplicates,
        "dead_lettered": row.dead_lettered,
        "next_offset": row.next_offset,
        "balanced": row.balanced,
    }


def _table(rows: list[PartitionBalance], namespace: str) -> str:
    head = (
        f"{'partition':32} {'messages':>9} {'consumed':>10} {'counted':>10} "
        f"{'duplicates':>10} {'dead-lettered':>13} {'next offset':>11}  ok"
    )
    lines = [f"namespace {namespace}", head]
    for r in rows:
        offset = "-" if r.next_offset is None else str(r.next_offset)
        lines.append(
            f"{r.partition:32} {r.messages:9d} {r.consumed:10d} {r.counted:10d} "
            f"{r.duplicates:10d} {r.dead_lettered:13d} {offset:>11}  "
            f"{'yes' if r.balanced else 'NO'}"
        )
    total = sum(r.consumed for r in rows)
    lines.append(f"{len(rows)} partition(s), {total} events consumed")
    return "\n".join(lines)
