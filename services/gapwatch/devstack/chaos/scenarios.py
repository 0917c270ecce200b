"""The scenarios, and how one runs from its own fresh stack to its row in the table.

Every scenario sends the same seeded stream (so one oracle result serves all), paced at
``rate`` events/s from the moment the first worker owns partitions, so the workers
ingest while it arrives and faults land mid-stream. It
waits until the workers have stored every partition's end offset, reads the topic and
the dead-letter topic back, and compares Redis with what they and the oracle say.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from random import Random
from typing import Any

from gapwatch.devstack.chaos.faults import (
    BrokerRestart,
    Fault,
    JoinWorker,
    LeaveWorker,
    RedisFlush,
    RedisOutage,
    SigKill,
)
from gapwatch.devstack.chaos.oracle import Deltas
from gapwatch.devstack.chaos.publishing import Publisher
from gapwatch.devstack.chaos.readback import read_dead_letter_sources, read_topic
from gapwatch.devstack.chaos.run import Run
from gapwatch.devstack.chaos.stack import ChaosStack
from gapwatch.devstack.chaos.stream import EVENTS_PER_MESSAGE, Msg
from gapwatch.devstack.chaos.verify import read_redis, verdict

__all__ = ["DEFAULT_SCENARIOS", "SCENARIOS", "Plan", "Shared", "run_scenario"]

logger = logging.getLogger(__name__)

PARTITIONS = 6
"""Enough for two workers to split, few enough that every partition sees traffic."""
READ_TIMEOUT_S = 60.0
STARTUP_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class Plan:
    name: str
    summary: str
    faults: tuple[Fault, ...] = ()
    s3: bool = False
    api: bool = False
    poison: bool = False
    replay_share: float = 0.0
    """After ingest, re-send this seeded share of the valid messages already sent."""
    delivery_timeout_ms: int = 15_000
    """The producer's give-up time per attempt. Shorter than a broker outage, it makes
    the producer re-send what was in flight with a new producer (so it may be stored
    twice), never retry it with the old one across the restart: Tansu on s3:// then
    acknowledges batches it never stored (docs/chaos.md, "Tansu finding")."""


SCENARIOS: dict[str, Plan] = {
    p.name: p
    for p in (
        Plan("baseline", "no faults"),
        Plan(
            "sigkill",
            "kill -9 the worker 3 times while it ingests; restart it each time",
            (SigKill(0.1, 0.3), SigKill(0.35, 0.55), SigKill(0.6, 0.8)),
        ),
        Plan(
            "rebalance",
            "a second worker joins mid-stream, later one of the two leaves with SIGTERM",
            (JoinWorker(0.15, 0.3), LeaveWorker(0.55, 0.7)),
        ),
        Plan("redis_flush", "Redis restarted empty mid-stream", (RedisFlush(0.3, 0.6),)),
        Plan(
            "redis_outage",
            "redis-server SIGSTOPped for 30 s; the API must answer 503 within 3 s",
            (RedisOutage(0.3, 0.5),),
            api=True,
        ),
        Plan(
            "broker_restart",
            "Tansu on s3:// (moto) kill -9'd and restarted while producing",
            (BrokerRestart(0.3, 0.6),),
            s3=True,
            delivery_timeout_ms=2_000,
        ),
        Plan("duplicate_replay", "10% of the valid messages sent again", replay_share=0.1),
        Plan("poison", "random bytes and mutated messages among the stream", poison=True),
        Plan(
            "combined",
            "kill -9 twice, Redis restarted empty, then a 10% replay (the make-test run)",
            # The flush last: its recovery (a replay from offset 0) is the slowest, and
            # every fault should still land while the stream arrives.
            (SigKill(0.1, 0.25), SigKill(0.35, 0.5), RedisFlush(0.6, 0.75)),
            replay_share=0.1,
        ),
    )
}
DEFAULT_SCENARIOS = [n for n in SCENARIOS if n != "combined"]


@dataclass(frozen=True)
class Shared:
    """What every scenario of one run uses: the stream, its expected counts, the poison
    messages (empty unless asked for), where to put logs, and the pace."""

    messages: Sequence[Msg]
    expected: Deltas
    poison: Sequence[Msg]
    work: Path
    seed: int
    rate: float
    """Events per second offered (messages are paced at rate / 500)."""


@dataclass
class Row:
    scenario: str
    summary: str
    events_sent: int = 0
    counted: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    mismatches: int = 0
    recover_s: float | None = None
    seconds: float = 0.0
    detail: dict[str, Any] = field(default_factory=dict)


def _mix_in(messages: Sequence[Msg], extra: Sequence[Msg], rng: Random) -> list[Msg]:
    out = list(messages)
    for msg in extra:
        out.insert(rng.randrange(len(out) + 1), msg)
    return out


def run_scenario(plan: Plan, shared: Shared) -> Row:
    started = time.monotonic()
    rng = Random(f"{shared.seed}/{plan.name}")
    messages = _mix_in(shared.messages, shared.poison if plan.poison else (), rng)
    sent = {m.value: m for m in messages}
    if len(sent) != len(messages):
        raise ValueError("two messages of the stream have the same bytes")
    row = Row(plan.name, plan.summary)
    work = shared.work / plan.name
    rate = shared.rate / EVENTS_PER_MESSAGE
    drain_s = 120 + len(messages) * EVENTS_PER_MESSAGE / 5_000
    with ChaosStack(work, plan.name, partitions=PARTITIONS, s3=plan.s3) as stack:
        publisher = Publisher(
            stack.bootstrap,
            stack.topic,
            rate_per_s=rate,
            delivery_timeout_ms=plan.delivery_timeout_ms,
        )
        run = Run(stack, publisher, rng, len(messages))
        _ingest_with_faults(plan, run, messages)
        publisher.join(len(messages) / rate + 300)
        if publisher.error:
            run.fail(f"producer: {publisher.error}")
        content = read_topic(stack.bootstrap, stack.topic, sent, READ_TIMEOUT_S)
        run.wait_caught_up(content.tallies.next_offset, drain_s)
        acked = set(publisher.acked_payloads)
        row.events_sent = publisher.acked_events
        if plan.replay_share:
            valid = [m for m in messages if m.kind == "valid"]
            replay = rng.sample(valid, max(1, round(plan.replay_share * len(valid))))
            replayer = Publisher(stack.bootstrap, stack.topic)
            replayer.send(replay)
            acked |= replayer.acked_payloads
            row.events_sent += replayer.acked_events
            row.detail["replayed_events"] = sum(m.events for m in replay)
            content = read_topic(stack.bootstrap, stack.topic, sent, READ_TIMEOUT_S)
            run.wait_caught_up(content.tallies.next_offset, drain_s)
        view = read_redis(stack.client, stack.namespace)
        letters = read_dead_letter_sources(stack.bootstrap, stack.dlq_topic, READ_TIMEOUT_S)
    expected_dead = content.tallies.total("dead_lettered")
    if plan.poison and letters.messages != expected_dead:
        run.fail(f"DLQ holds {letters.messages} messages, {expected_dead} expected")
    result = verdict(
        stack.topic, shared.expected, content, view, letters, frozenset(acked), run.failed_checks
    )
    row.counted = view.tally(stack.topic, "counted")
    row.duplicates = view.tally(stack.topic, "duplicates")
    row.dead_lettered = view.tally(stack.topic, "dead_lettered")
    row.mismatches = result.total
    times = [r["seconds"] for r in run.recoveries if r["seconds"] is not None]
    row.recover_s = max(times) if times else None
    row.seconds = round(time.monotonic() - started, 1)
    row.detail.update(
        {
            "expected": {
                k: content.tallies.total(k) for k in ("counted", "duplicates", "dead_lettered")
            },
            "mismatch_breakdown": result.as_dict(),
            "recoveries": run.recoveries,
            "readyz_states_seen": sorted(run.states_seen),
            "dead_letter_topic": {"messages": letters.messages, "sources": letters.sources},
            "producer": {"sends": publisher.sends, "failed_deliveries": publisher.failures},
            "notes": run.notes,
            "logs": str(work / "logs"),
        }
    )
    return row


def _ingest_with_faults(plan: Plan, run: Run, messages: Sequence[Msg]) -> None:
    """Start the API (if the plan needs it) and the first worker, send the stream, and
    inject each fault at its seeded moment, waiting for recovery before the next."""
    stack = run.stack
    if plan.api:
        stack.start_api()
    worker = stack.start_worker()
    # Sending starts once the worker owns partitions: the stream arrives while it ingests.
    what = "the first worker assigned partitions"
    run.wait_for(what, lambda: bool(stack.assigned(worker)), STARTUP_TIMEOUT_S)
    run.publisher.start(messages)
    for fault in plan.faults:
        fraction = run.rng.uniform(fault.low, fault.high)
        run.wait_progress(fraction, on_production=fault.on_production)
        before = stack.progress() or 0
        logger.info("%s: injecting %s at %d messages ingested", plan.name, fault.name, before)
        extra = fault.inject(run)
        run.recover(fault.name, before, extra)
