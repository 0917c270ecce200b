"""One chaos run: build the seeded stream and its expected counts once, then run each
scenario on its own fresh stack. Used by ``scripts/chaos`` and by the e2e test."""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from random import Random

from gapwatch.adapters.avro_codec import AvroCodec
from gapwatch.adapters.refdata_files import load_reference_data
from gapwatch.devstack.chaos.oracle import Oracle
from gapwatch.devstack.chaos.scenarios import SCENARIOS, Row, Shared, run_scenario
from gapwatch.devstack.chaos.stream import build_stream, poison_candidates
from gapwatch.publisher.world import load_scenario_data
from gapwatch.settings import Settings

__all__ = ["Report", "run_chaos"]

logger = logging.getLogger(__name__)

POISON_EVERY = 50
"""The poison scenario adds one poison candidate per 50 stream messages (at least 10)."""


@dataclass
class Report:
    seed: int
    events: int
    messages: int
    rate: float
    setup_s: float = 0.0
    rows: list[Row] = field(default_factory=list)
    wall_s: float = 0.0

    @property
    def mismatches(self) -> int:
        return sum(r.mismatches for r in self.rows)


def run_chaos(
    settings: Settings,
    *,
    events: int,
    seed: int,
    scenarios: Sequence[str],
    rate: float,
    work: Path,
) -> Report:
    unknown = [s for s in scenarios if s not in SCENARIOS]
    if unknown:
        raise ValueError(f"unknown scenarios: {', '.join(unknown)} (known: {', '.join(SCENARIOS)})")
    started = time.monotonic()
    refdata = settings.require_refdata()
    codec = AvroCodec(settings.schemas_dir)
    logger.info("chaos: drawing %d events with seed %d", events, seed)
    now_ms = time.time_ns() // 1_000_000
    stream = build_stream(
        codec, load_scenario_data(refdata), events=events, seed=seed, now_ms=now_ms
    )
    oracle = Oracle(codec, load_reference_data(refdata, with_population=False), settings.ingest)
    logger.info("chaos: computing expected counts in-process (%d messages)", len(stream.messages))
    expected = oracle.expected_counts(stream)
    poison = []
    if any(SCENARIOS[s].poison for s in scenarios):
        count = max(10, len(stream.messages) // POISON_EVERY)
        candidates = poison_candidates(codec, stream.valid, Random(seed), count)
        poison = oracle.poison(candidates, now_ms)
    shared = Shared(stream.messages, expected, poison, work, seed, rate)
    report = Report(seed, stream.events, len(stream.messages), rate)
    report.setup_s = round(time.monotonic() - started, 1)
    for name in scenarios:
        logger.info("chaos: scenario %s", name)
        try:
            row = run_scenario(SCENARIOS[name], shared)
        except Exception as exc:  # one broken scenario must not hide the others' rows
            logger.error("chaos: scenario %s failed:\n%s", name, traceback.format_exc())
            row = Row(name, SCENARIOS[name].summary, mismatches=1)
            row.detail["error"] = f"{type(exc).__name__}: {exc}"
        logger.info("chaos: %s done, %d mismatches, %.1f s", name, row.mismatches, row.seconds)
        report.rows.append(row)
    report.wall_s = round(time.monotonic() - started, 1)
    return report
