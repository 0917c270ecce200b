"""``gapwatch rebuild``: empty this namespace's counts and rebuild them by replay.

The store gets a new epoch, so every running worker's next write is refused (or its
epoch check, every 2 s, notices); each re-joins its group, resumes from the now-empty
offsets, i.e. from the earliest retained offset of every partition, and reports
``rebuilding`` on /readyz until it has caught up. Use it after changing how events are
counted (reference data, indicator definitions) or to recover a damaged store.

Exit codes: 0 done (and, with ``--wait``, every worker ready again), 1 a worker did not
become ready in time, 2 Redis unavailable or ``--yes`` missing.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import Any

import httpx

from gapwatch.core.errors import TransientError
from gapwatch.settings import Settings

__all__ = ["register"]


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "rebuild",
        help="clear this namespace's counts and rebuild them by replaying the topic",
    )
    parser.add_argument(
        "--yes", action="store_true", help="really clear the counts (required: destructive)"
    )
    parser.add_argument(
        "--wait",
        metavar="READYZ_URL",
        action="append",
        default=[],
        help="a worker's /readyz to poll until it is ready again (repeatable)",
    )
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds to --wait")
    parser.set_defaults(func=_run)


async def _rebuild(settings: Settings) -> str:
    from gapwatch.adapters.redis_store import RedisStore

    store = RedisStore.from_url(settings.redis.url, settings.redis.namespace, timeout_s=10.0)
    try:
        return await store.rebuild()
    finally:
        await store.close()


def _wait_ready(urls: list[str], timeout_s: float, epoch: str) -> list[str]:
    """Poll each worker until it reports ready under the new epoch; the ones that
    did not in time."""
    pending = set(urls)
    deadline = time.monotonic() + timeout_s
    with httpx.Client(timeout=2.0) as client:
        while pending and time.monotonic() < deadline:
            for url in sorted(pending):
                try:
                    body = client.get(url).json()
                except (httpx.HTTPError, ValueError):
                    continue
                if body.get("state") == "ready" and body.get("epoch") == epoch:
                    pending.discard(url)
            time.sleep(0.5)
    return sorted(pending)


def _run(args: argparse.Namespace, settings: Settings) -> int:
    if not args.yes:
        sys.stderr.write(
            f"rebuild clears every count in namespace {settings.redis.namespace!r} "
            "and replays the topic; pass --yes to do it\n"
        )
        return 2
    started = time.monotonic()
    try:
        epoch = asyncio.run(_rebuild(settings))
    except TransientError as exc:
        sys.stderr.write(f"rebuild: {exc}\n")
        return 2
    sys.stdout.write(
        f"namespace {settings.redis.namespace}: cleared; new epoch {epoch}. "
        "Workers notice within seconds and replay from the earliest offsets.\n"
    )
    if not args.wait:
        return 0
    late = _wait_ready(args.wait, args.timeout, epoch)
    if late:
        sys.stderr.write(f"not ready after {args.timeout:.0f} s: {', '.join(late)}\n")
        return 1
    sys.stdout.write(f"every worker ready again after {time.monotonic() - started:.1f} s\n")
    return 0
