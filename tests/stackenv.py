"""Environment for gapwatch processes isolated to one test."""

from __future__ import annotations

from pathlib import Path

from gapwatch.devstack.services import isolated_env


def stack_env(broker: str, redis_url: str, namespace: str, run_dir: Path) -> dict[str, str]:
    return isolated_env(broker, redis_url, namespace, run_dir, partitions=4)
