"""The faults a scenario injects. Each fires once its progress window is reached (a
seeded fraction of the planned messages ingested, or acknowledged by the broker for a
broker fault: ``Run.wait_progress``), does its damage, and says what "recovered" means
beyond the common test (workers ready, more messages stored as read than before the
fault): see ``Run.recover``.
"""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from gapwatch.devstack.chaos.run import Run

__all__ = [
    "BrokerRestart",
    "Fault",
    "JoinWorker",
    "LeaveWorker",
    "RedisFlush",
    "RedisOutage",
    "SigKill",
]

logger = logging.getLogger(__name__)

Extra = Callable[[], bool]
API_PROBE_PATH = "/v1/icbs/QOP/indicators/ed_attendance_rate"
API_503_WITHIN_S = 3.0


def _always() -> bool:
    return True


@dataclass(frozen=True)
class Fault:
    low: float
    high: float
    """The fault fires at a seeded fraction of the stream in [low, high)."""

    name = "fault"
    on_production = False
    """Fire on messages acknowledged by the broker (while the workers ingest) instead of
    messages ingested: a broker fault must hit the producer mid-stream."""

    def inject(self, run: Run) -> Extra:
        raise NotImplementedError


class SigKill(Fault):
    """kill -9 a worker mid-chunk; start a new one after a seeded pause (0.2-1 s)."""

    name = "sigkill"

    def inject(self, run: Run) -> Extra:
        worker = run.take_down_a_worker()
        run.stack.kill(worker.process)
        time.sleep(run.rng.uniform(0.2, 1.0))
        run.stack.restart_worker(worker)
        return _always


class JoinWorker(Fault):
    """A second worker joins the group: an eager rebalance splits the partitions."""

    name = "join"

    def inject(self, run: Run) -> Extra:
        joined = run.stack.start_worker()
        return lambda: bool(run.stack.assigned(joined))


class LeaveWorker(Fault):
    """A seeded worker leaves with SIGTERM (a clean LeaveGroup); the rest take over."""

    name = "leave"

    def inject(self, run: Run) -> Extra:
        run.take_down_a_worker().process.stop(30)
        every = set(range(run.stack.partitions))
        return lambda: set().union(*(run.stack.assigned(w) for w in run.live_workers())) == every


class RedisFlush(Fault):
    """Redis restarted empty (no persistence): every count, offset and tally is gone.
    Recovered only once every worker's /readyz reports ``"state": "ready"`` again."""

    name = "redis_flush"

    def inject(self, run: Run) -> Extra:
        run.stack.kill(run.stack.redis_process)
        run.stack.start_redis()
        return lambda: run.readiness(explicit=True)


class RedisOutage(Fault):
    """redis-server frozen (SIGSTOP) for 30 s: connections hang rather than fail. The
    API must answer 503 with a message within 3 s meanwhile (probed at 1, 10, 20 s)."""

    name = "redis_outage"
    seconds = 30.0

    def inject(self, run: Run) -> Extra:
        _probe(run, want=200, when="before the Redis outage")
        stopped = time.monotonic()
        run.stack.signal_redis(signal.SIGSTOP)
        try:
            for at in (1.0, 10.0, 20.0):
                time.sleep(max(0.0, stopped + at - time.monotonic()))
                _probe(run, want=503, when=f"{at:.0f} s into the Redis outage")
            time.sleep(max(0.0, stopped + self.seconds - time.monotonic()))
        finally:
            run.stack.signal_redis(signal.SIGCONT)
        return _always


class BrokerRestart(Fault):
    """kill -9 Tansu while the producer is sending; restart it on the same port and
    s3:// storage after a seeded 3-5 s, longer than the scenario's 2 s delivery timeout,
    so the producer re-sends what was in flight."""

    name = "broker_restart"
    on_production = True

    def inject(self, run: Run) -> Extra:
        run.stack.kill(run.stack.broker_process)
        time.sleep(run.rng.uniform(3.0, 5.0))
        run.stack.start_broker()
        return _always


def _probe(run: Run, *, want: int, when: str) -> None:
    """One API request; a failed check unless it is ``want`` within 3 s, and a 503 must
    carry a message (``detail``)."""
    started = time.monotonic()
    try:
        response = httpx.get(
            f"{run.stack.api_url}{API_PROBE_PATH}", headers=run.stack.api_headers(), timeout=10.0
        )
        status, body = response.status_code, response.text
    except httpx.HTTPError as exc:
        status, body = 0, f"{type(exc).__name__}: {exc}"
    elapsed = time.monotonic() - started
    run.notes.append(f"API {when}: {status} in {elapsed:.2f} s")
    has_message = want != 503 or '"detail"' in body
    if status != want or elapsed > API_503_WITHIN_S or not has_message:
        run.fail(
            f"API {when}: {status} after {elapsed:.1f} s ({body[:120]!r}); "
            f"want {want} within {API_503_WITHIN_S:.0f} s"
        )
