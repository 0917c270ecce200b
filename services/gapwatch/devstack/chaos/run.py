"""The state of one scenario while it runs, and the waits every fault needs.

Waits are bounded: a worker that never recovers makes the scenario report a failed
check and move on to counting, never hang the run. While waiting, workers that exit
without the harness having stopped them are reported (a failed check) and restarted,
so the counts at the end still say what the system did with the rest of the stream.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from random import Random
from typing import Any

from gapwatch.devstack.chaos.publishing import Publisher
from gapwatch.devstack.chaos.stack import ChaosStack, Worker

__all__ = ["Run", "is_ready"]

logger = logging.getLogger(__name__)

POLL_S = 0.05
RECOVERY_TIMEOUT_S = 120.0
"""Longest a worker may take to be back after a fault (a SIGKILLed member holds its
partitions for the 6 s session timeout, then a join waits ~3 s: ~10 s is normal)."""
TRIGGER_TIMEOUT_S = 180.0
STALL_S = 60.0
"""Offsets unchanged this long while behind: the workers are stuck (a Redis outage is 30 s)."""


def is_ready(answer: tuple[int, dict[str, Any]] | None, *, explicit: bool = False) -> bool:
    """/readyz says ready: 200 and, when the worker reports a state, ``ready``.
    ``explicit`` requires the state to be present (after a Redis flush it must be)."""
    if answer is None or answer[0] != 200:
        return False
    state = answer[1].get("state")
    return state == "ready" if explicit or state is not None else True


@dataclass
class Run:
    stack: ChaosStack
    publisher: Publisher
    rng: Random
    total: int
    """Messages the scenario plans to send (before replays and re-sends)."""
    failed_checks: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    recoveries: list[dict[str, Any]] = field(default_factory=list)
    states_seen: set[str] = field(default_factory=set)

    def fail(self, check: str) -> None:
        logger.warning("check failed: %s", check)
        self.failed_checks.append(check)

    def live_workers(self) -> list[Worker]:
        return [w for w in self.stack.workers if not w.expected_exit]

    def take_down_a_worker(self) -> Worker:
        """A seeded live worker, marked so that its exit is not reported as a failure."""
        worker = self.rng.choice(self.live_workers())
        worker.expected_exit = True
        return worker

    def watch_workers(self) -> None:
        for worker in self.live_workers():
            if not worker.alive:
                rc = worker.process.process.returncode
                self.fail(f"{worker.name} exited on its own (rc={rc}); restarted")
                self.stack.restart_worker(worker)

    def readiness(self, *, explicit: bool = False) -> bool:
        ready = True
        for worker in self.live_workers():
            answer = self.stack.readyz(worker)
            if answer is not None and isinstance(answer[1].get("state"), str):
                self.states_seen.add(answer[1]["state"])
            ready = ready and is_ready(answer, explicit=explicit)
        return ready

    def wait_for(self, what: str, done: Callable[[], bool], timeout_s: float) -> float | None:
        """Poll ``done`` until true; the seconds it took, or None (a failed check)."""
        started = time.monotonic()
        while time.monotonic() - started < timeout_s:
            self.watch_workers()
            if done():
                return time.monotonic() - started
            time.sleep(POLL_S)
        self.fail(f"{what} not within {timeout_s:.0f} s")
        return None

    def wait_progress(self, fraction: float, *, on_production: bool = False) -> None:
        """Until the workers have stored ``fraction`` of the planned messages as read
        (or, ``on_production``, the broker has acknowledged that fraction while the
        workers ingest), then a seeded moment more, so faults land anywhere in a chunk.
        Ingest progress spreads faults over the workers' work whether they keep up with
        the paced stream or lag behind it."""
        target = fraction * self.total

        def reached() -> bool:
            progress = self.stack.progress()
            if on_production:
                return self.publisher.acked_messages >= target and bool(progress)
            return progress is not None and progress >= target

        what = "acknowledged while ingesting" if on_production else "ingested"
        self.wait_for(f"{fraction:.0%} of the messages {what}", reached, TRIGGER_TIMEOUT_S)
        time.sleep(self.rng.uniform(0.0, 0.5))
        if (self.stack.progress() or 0) >= self.total:
            self.notes.append(f"a fault due at {fraction:.0%} fired after everything was ingested")

    def recover(self, fault: str, before: int, extra: Callable[[], bool]) -> None:
        """From now (the fault's end) until the workers are ready and have stored more
        than ``before`` messages as read (or everything planned): time to recover."""

        def recovered() -> bool:
            ready = self.readiness()  # every poll: it records the states passed through
            progress = self.stack.progress()
            if progress is None or (progress <= before and progress < self.total):
                return False
            return ready and extra()

        seconds = self.wait_for(f"recovery after {fault}", recovered, RECOVERY_TIMEOUT_S)
        self.recoveries.append({"fault": fault, "seconds": _round(seconds)})

    def wait_caught_up(self, ends: dict[int, int], timeout_s: float) -> None:
        """Until every partition's next offset in Redis is its end in the topic; gives up
        early when the offsets stop moving for STALL_S (a stuck worker)."""
        last: list[Any] = [None, time.monotonic()]

        def caught_up() -> bool:
            stored = self.stack.offsets()
            if stored != last[0]:
                last[:] = [stored, time.monotonic()]
            elif time.monotonic() - last[1] > STALL_S:
                raise _Stalled
            return stored is not None and all(stored.get(p) == e for p, e in ends.items())

        try:
            self.wait_for("workers caught up with the topic", caught_up, timeout_s)
        except _Stalled:
            self.fail(f"workers stopped short of the topic's end: no progress for {STALL_S:.0f} s")


class _Stalled(Exception):
    pass


def _round(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 2)
