"""Environment for gapwatch processes isolated to one test."""

from __future__ import annotations

import json
from pathlib import Path

from gapwatch.devstack.dev_tokens import bearer, read_token
from gapwatch.devstack.services import isolated_env


def stack_env(broker: str, redis_url: str, namespace: str, run_dir: Path) -> dict[str, str]:
    """Signed with the test run's key (tests/conftest.py), so tests/tokens.py's tokens
    work against it; ``scripts/stack up`` also leaves its own token in the run dir."""
    return isolated_env(broker, redis_url, namespace, run_dir, partitions=4)


def stack_token(env: dict[str, str]) -> str:
    """The national development token ``scripts/stack up`` issued for this stack."""
    return read_token(Path(env["GAPWATCH_RUN_DIR"]))


def stack_headers(env: dict[str, str]) -> dict[str, str]:
    return bearer(stack_token(env))


def fast_alerter_env(indicator: str) -> dict[str, str]:
    """An alerter that charts one indicator by IMD quintile over 60 days, judges closed
    days at once (no lateness), re-evaluates every second, waits 3 s for history to
    settle and never calls a feed stale: the widening-gap tests see their alert in
    seconds."""
    return {
        "GAPWATCH_ALERTS_INDICATORS": json.dumps([indicator]),
        "GAPWATCH_ALERTS_BREAKDOWNS": json.dumps(["imd_quintile"]),
        "GAPWATCH_ALERTS_HISTORY_PERIODS": "60",
        "GAPWATCH_ALERTS_LATENESS_S": "0",
        "GAPWATCH_ALERTS_INTERVAL_S": "1",
        "GAPWATCH_ALERTS_SETTLE_S": "3",
        "GAPWATCH_ALERTS_STALE_MIN_SILENCE_S": "86400",
    }
