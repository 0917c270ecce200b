"""``gapwatch publish``: synthetic history, a paced live stream, or a trust's own file.

Modes (exactly one):

- ``--backfill-days N``: N days of history ending now, sent at full speed, with each
  event type's local-time daily pattern; ``--count`` events in all (default 20,000 a day).
- ``--rate R``: live, R events/s stamped with the current time, until ``--duration``,
  ``--count``, Ctrl-C or SIGTERM.
- ``--from-file PATH``: JSON lines, one EncounterEvent object per line, for trusts testing
  their feeds. Every line is checked against the Avro schema and the ingest contract
  (``core.validation``); bad lines are reported with line number and reason and not sent.

Broker and topic come from settings (GAPWATCH_KAFKA_BOOTSTRAP, GAPWATCH_KAFKA_TOPIC).
A JSON summary is written to stdout at the end. Exit codes: 0 all delivered, 1 some file
lines rejected, 3 some events not delivered (2 is a configuration error, from the CLI).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import secrets
import signal
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from gapwatch.adapters.avro_codec import AvroCodec
from gapwatch.core.errors import ConfigError
from gapwatch.core.validation import Limits
from gapwatch.core.windows import DAY_MS
from gapwatch.publisher.feedfile import EventLineParser, read_event_lines
from gapwatch.settings import Settings

if TYPE_CHECKING:
    from gapwatch.publisher.producer import EncounterProducer

__all__ = ["register"]

logger = logging.getLogger(__name__)

BACKFILL_EVENTS_PER_DAY = 20_000
"""Default backfill volume: roughly one large ICS's daily encounters across these data sets."""
_MAX_BURST = 10_000
"""Live mode never generates more than this between checks for signals and due batches."""
_EXIT_REJECTED = 1
_EXIT_UNDELIVERED = 3


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "publish",
        help="publish encounter events (synthetic backfill/live, or a JSON-lines file)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--backfill-days", type=float, metavar="N", help="N days of history")
    mode.add_argument("--rate", type=float, metavar="R", help="live: R events per second")
    mode.add_argument("--from-file", type=Path, metavar="PATH", help="JSON lines to validate+send")
    parser.add_argument(
        "--count", type=int, help="total events (backfill default 20,000 a day; live: stop after)"
    )
    parser.add_argument("--duration", type=float, metavar="S", help="live: stop after S seconds")
    parser.add_argument("--seed", type=int, help="generator seed (default: random, printed)")
    parser.add_argument("--batch-size", type=int, help="events per message (500 backfill, 50 live)")
    parser.add_argument(
        "--icb",
        action="append",
        default=[],
        metavar="ODS",
        help="only patients resident in this ICB, e.g. QOP (repeatable; default all England)",
    )
    parser.add_argument("--mix", help="e.g. ed_arrival=0.5,admission=0.5 (others 0)")
    parser.add_argument(
        "--inequality", type=float, default=1.0, help="scale of the built-in gaps, 0 (none)..3"
    )
    parser.add_argument(
        "--max-wait-ms", type=int, default=500, help="longest a part-filled batch waits (ms)"
    )
    parser.add_argument(
        "--flush-timeout", type=float, default=30.0, metavar="S", help="wait for delivery (s)"
    )
    parser.add_argument("--check-only", action="store_true", help="--from-file: send nothing")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace, settings: Settings) -> int:
    if args.count is not None and args.count < 0:
        raise ConfigError("--count must be >= 0")
    if args.rate is not None and not args.rate > 0:
        raise ConfigError("--rate must be > 0")
    if args.backfill_days is not None and not args.backfill_days > 0:
        raise ConfigError("--backfill-days must be > 0")
    if args.duration is not None and args.rate is None:
        raise ConfigError("--duration only applies to --rate")
    if args.check_only and args.from_file is None:
        raise ConfigError("--check-only only applies to --from-file")
    codec = AvroCodec(settings.schemas_dir)
    if args.from_file is not None:
        return _run_file(args, settings, codec)
    from gapwatch.publisher.mix import DEFAULT_MIX, parse_mix
    from gapwatch.publisher.scenario import Scenario, ScenarioConfig
    from gapwatch.publisher.world import load_scenario_data

    seed = args.seed if args.seed is not None else secrets.randbelow(2**32)
    config = ScenarioConfig(
        seed=seed,
        mix=parse_mix(args.mix) if args.mix else dict(DEFAULT_MIX),
        icbs=frozenset(code.upper() for code in args.icb),
        inequality=args.inequality,
    )
    scenario = Scenario(load_scenario_data(settings.require_refdata()), config)
    live = args.rate is not None
    producer = _producer(args, settings, codec, default_batch=50 if live else 500)
    logger.info(
        "publishing mode=%s seed=%d topic=%s",
        "live" if live else "backfill",
        seed,
        settings.kafka.topic,
    )
    started = time.monotonic()
    with _StopOnSignal() as stop:
        if live:
            events: Iterator[dict[str, Any]] = _paced(scenario.event, args, stop, producer)
        else:
            count = args.count
            if count is None:
                count = round(args.backfill_days * BACKFILL_EVENTS_PER_DAY)
            end_ms = time.time_ns() // 1_000_000
            events = scenario.backfill(count, args.backfill_days, end_ms)
        for n, event in enumerate(events, start=1):
            producer.send(event)
            if n % 10_000 == 0 and stop.requested:
                break
    summary = {"mode": "live" if live else "backfill", "seed": seed, "topic": settings.kafka.topic}
    return _finish(producer, args, started, summary)


def _paced(
    make: Callable[[int], dict[str, Any]],
    args: argparse.Namespace,
    stop: _StopOnSignal,
    producer: EncounterProducer,
) -> Iterator[dict[str, Any]]:
    """Events at ``args.rate`` per second against the monotonic clock, stamped with the
    wall clock; sleeps at most 0.1 s at a time so signals and part-filled batches are
    served promptly."""
    rate: float = args.rate
    limit = args.count if args.count is not None else math.inf
    start = time.monotonic()
    sent = 0
    behind_logged = False
    while not stop.requested and sent < limit:
        elapsed = time.monotonic() - start
        if args.duration is not None and elapsed >= args.duration:
            break
        due = min(math.floor(elapsed * rate) + 1, limit)
        if due - sent > _MAX_BURST:
            if not behind_logged:
                logger.warning("cannot keep up rate=%.0f behind_events=%d", rate, due - sent)
                behind_logged = True
            due = sent + _MAX_BURST
        now_ms = time.time_ns() // 1_000_000
        while sent < due:
            yield make(now_ms)
            sent += 1
        producer.flush_due()
        time.sleep(max(0.0, min(0.1, start + sent / rate - time.monotonic())))


def _run_file(args: argparse.Namespace, settings: Settings, codec: AvroCodec) -> int:
    limits = Limits(
        retention_ms=settings.ingest.day_retention_days * DAY_MS,
        future_skew_ms=settings.ingest.future_skew_s * 1000,
    )
    parser = EventLineParser(codec, settings.schemas_dir, time.time_ns() // 1_000_000, limits)
    try:
        with args.from_file.open(encoding="utf-8") as handle:
            events, errors = read_event_lines(handle, parser)
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {args.from_file}: {exc}") from exc
    for err in errors:
        logger.error("line rejected line=%d reason=%s detail=%s", err.line, err.reason, err.detail)
    extra: dict[str, Any] = {
        "mode": "file",
        "seed": None,
        "topic": settings.kafka.topic,
        "valid_lines": len(events),
        "rejected_lines": len(errors),
        "rejections": [
            {"line": e.line, "reason": e.reason, "detail": e.detail} for e in errors[:100]
        ],
    }
    rc = _EXIT_REJECTED if errors else 0
    if args.check_only:
        _write_summary(extra)
        return rc
    started = time.monotonic()
    producer = _producer(args, settings, codec, default_batch=500)
    producer.send_many(events)
    return max(rc, _finish(producer, args, started, extra))


def _producer(
    args: argparse.Namespace, settings: Settings, codec: AvroCodec, default_batch: int
) -> EncounterProducer:
    from gapwatch.publisher.producer import EncounterProducer, ProducerOptions

    options = ProducerOptions(
        events_per_message=args.batch_size or default_batch, max_wait_ms=args.max_wait_ms
    )
    return EncounterProducer(settings.kafka, codec, options)


def _finish(
    producer: EncounterProducer, args: argparse.Namespace, started: float, extra: Mapping[str, Any]
) -> int:
    produced = time.monotonic() - started
    stats = producer.flush(args.flush_timeout)
    elapsed = time.monotonic() - started
    summary = {
        **extra,
        **stats.as_dict(),
        "produce_s": round(produced, 3),
        "elapsed_s": round(elapsed, 3),
        "events_per_s": round(stats.events_sent / elapsed, 1) if elapsed > 0 else None,
    }
    _write_summary(summary)
    return _EXIT_UNDELIVERED if stats.events_failed or stats.events_pending else 0


def _write_summary(summary: Mapping[str, Any]) -> None:
    sys.stdout.write(json.dumps(summary) + "\n")
    sys.stdout.flush()


class _StopOnSignal:
    """SIGINT/SIGTERM set ``requested`` instead of killing the process, so the producer
    can still flush and the summary still counts what was delivered."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        logger.info("stopping on signal=%d", signum)
        self.requested = True

    def __enter__(self) -> _StopOnSignal:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
