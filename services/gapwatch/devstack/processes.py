"""Child processes for local tooling (benchmarks, chaos runs): start one with its output
in a log file, read the log's tail, poll an HTTP endpoint until it says ready.

Every process gets its own session (``start_new_session``), so a Ctrl-C in the terminal
reaches only the tool, which then stops its children itself, in order.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import httpx

from gapwatch.devstack.services import ManagedProcess

__all__ = ["StartupError", "exit_on_sigterm", "log_tail", "spawn", "wait_http"]

POLL_S = 0.05


class StartupError(Exception):
    """A child process died, or never became ready in time."""


def spawn(name: str, argv: list[str], env: Mapping[str, str], logs: Path) -> ManagedProcess:
    logs.mkdir(parents=True, exist_ok=True)
    log_path = logs / f"{name}.log"
    with log_path.open("ab") as out:
        process = subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, env=dict(env), start_new_session=True
        )
    return ManagedProcess(name, process, log_path)


def log_tail(proc: ManagedProcess, chars: int = 3000) -> str:
    try:
        return proc.log_path.read_text(errors="replace")[-chars:]
    except OSError:
        return ""


def wait_http(
    url: str, proc: ManagedProcess, timeout_s: float, ok: Callable[[httpx.Response], bool]
) -> float:
    """Poll ``url`` until ``ok(response)``; returns the monotonic time it happened."""
    deadline = time.monotonic() + timeout_s
    with httpx.Client(timeout=2.0) as client:
        while time.monotonic() < deadline:
            if proc.process.poll() is not None:
                raise StartupError(f"{proc.name} exited during start-up:\n{log_tail(proc)}")
            try:
                if ok(client.get(url)):
                    return time.monotonic()
            except httpx.HTTPError:
                pass
            time.sleep(POLL_S)
    raise StartupError(f"{proc.name} not ready at {url} after {timeout_s:.0f}s:\n{log_tail(proc)}")


def exit_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit, so every ``finally`` runs and stops the children."""
    signal.signal(signal.SIGTERM, _exit)


def _exit(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)
