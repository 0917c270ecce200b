"""The local stack (``scripts/stack up``: worker + API) on the test's broker and Redis."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from gapwatch.settings import repo_root
from tests.stackenv import stack_env

ROOT = repo_root()


@pytest.fixture()
def stack(broker: str, redis_url: str, namespace: str, tmp_path: Path) -> Iterator[dict[str, str]]:
    env = stack_env(broker, redis_url, namespace, tmp_path)
    up = subprocess.run(
        [str(ROOT / "scripts" / "stack"), "up"],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    try:
        assert up.returncode == 0, f"stack up failed:\n{up.stdout}\n{up.stderr}\n" + stack_logs(
            tmp_path
        )
        yield env
    finally:
        subprocess.run(
            [str(ROOT / "scripts" / "stack"), "down"], env=env, timeout=60, capture_output=True
        )


def stack_logs(run_dir: Path) -> str:
    return "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in (run_dir / "logs").glob("*"))
