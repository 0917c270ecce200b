"""``gapwatch publish``: synthetic history, a paced live stream, or a trust's own file.

Modes (exactly one):

- ``--backfill-days N``: N days of history ending now, sent at full speed, with each
  event type's local-time daily pattern; ``--count`` events in all (default 20,000 a day).
- ``--rate R``: live, R events/s stamped with the current time, until ``--duration``,
  ``--count``, Ctrl-C or SIGTERM.
- ``--from-file PATH``: JSON lines, one EncounterEvent object per line, for trusts testing
  their feeds. Every line is checked against the Avro schema and the ingest contract
  (``core.validation``); bad lines are reported with line number and reason and not sent.
  A line may give ``nhs_number`` instead of ``person_key``: it is turned into
  ``person_key`` with the trust's key (GAPWATCH_PUBLISHER_PERSON_KEY_SECRET) and never
  sent. Without a key such lines are rejected.

Synthetic scenarios (``--scenario``): ``stable`` (default) keeps every rate steady;
``widening_gap`` makes the ED attendance and emergency admission rates of one ICB's most
deprived quintile climb day by day, e.g. ``--scenario widening_gap --icb QOP`` (QOP's
residents only) or ``--scenario widening_gap --widen-icb QOP`` (all England, QOP widens).
The climb starts at 00:00 UTC of ``--widen-from`` (``-7d``: 7 days before the end of the
backfill, or before now when live) and adds ``--widen-per-day`` x the stable rate per day
(the k-th day is 1 + k x F times stable, at most 3x). The extra patients come on top of
``--count`` / ``--rate``; everybody else's events are drawn exactly as when stable.

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
from gapwatch.publisher.pseudonym import Pseudonymiser
from gapwatch.publisher.widening import (
    DEFAULT_ACTIVITIES,
    DEFAULT_PER_DAY,
    DEFAULT_WIDEN_FROM,
    Widening,
    parse_widen_from,
)
from gapwatch.settings import Settings

if TYPE_CHECKING:
    from gapwatch.publisher.producer import EncounterProducer
    from gapwatch.publisher.world import ScenarioData

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
        help="only patients resident in this ICB, e.g. QOP (repeatable; default all England); "
        "with --scenario widening_gap and no --widen-icb, a single --icb is also the one widened",
    )
    parser.add_argument(
        "--scenario",
        choices=("stable", "widening_gap"),
        default="stable",
        help="stable rates (default), or one ICB's IMD quintile 1 getting worse day by day",
    )
    parser.add_argument(
        "--widen-icb", metavar="ODS", help="widening_gap: the ICB whose quintile 1 widens, e.g. QOP"
    )
    parser.add_argument(
        "--widen-from",
        metavar="DATE|-Nd",
        help=f"widening_gap: first widened UTC day, YYYY-MM-DD or -Nd before the end "
        f"(default {DEFAULT_WIDEN_FROM})",
    )
    parser.add_argument(
        "--widen-per-day",
        type=float,
        metavar="F",
        help=f"widening_gap: quintile 1's rate grows by F x its stable rate a day "
        f"(default {DEFAULT_PER_DAY})",
    )
    parser.add_argument(
        "--widen-activity",
        metavar="CLASS[,CLASS]",
        help="widening_gap: activity classes that widen, of ed, emergency, elective, "
        "outpatient, waiting (default ed,emergency: ED attendances, emergency admissions)",
    )
    parser.add_argument(
        "--newest-first",
        action="store_true",
        help="backfill: send the latest hours first (a long backfill shows today at once)",
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
    if args.newest_first and args.backfill_days is None:
        raise ConfigError("--newest-first only applies to --backfill-days")
    widen_flags = (args.widen_icb, args.widen_from, args.widen_per_day, args.widen_activity)
    if args.scenario != "widening_gap" and any(f is not None for f in widen_flags):
        raise ConfigError("--widen-* flags only apply to --scenario widening_gap")
    if args.from_file is not None:
        if args.scenario != "stable":
            raise ConfigError("--scenario only applies to synthetic events, not --from-file")
        return _run_file(args, settings, AvroCodec(settings.schemas_dir))
    end_ms = time.time_ns() // 1_000_000
    widen_from_ms = parse_widen_from(args.widen_from or DEFAULT_WIDEN_FROM, end_ms)
    codec = AvroCodec(settings.schemas_dir)
    from gapwatch.publisher.mix import DEFAULT_MIX, parse_mix
    from gapwatch.publisher.scenario import Scenario, ScenarioConfig
    from gapwatch.publisher.world import load_scenario_data

    seed = args.seed if args.seed is not None else secrets.randbelow(2**32)
    data = load_scenario_data(settings.require_refdata())
    icbs = frozenset(code.upper() for code in args.icb)
    widening = _widening(args, data, icbs, widen_from_ms) if args.scenario != "stable" else None
    config = ScenarioConfig(
        seed=seed,
        mix=parse_mix(args.mix) if args.mix else dict(DEFAULT_MIX),
        icbs=icbs,
        inequality=args.inequality,
        widening=widening,
    )
    scenario = Scenario(data, config)
    live = args.rate is not None
    producer = _producer(args, settings, codec, default_batch=50 if live else 500)
    logger.info(
        "publishing mode=%s seed=%d topic=%s scenario=%s",
        "live" if live else "backfill",
        seed,
        settings.kafka.topic,
        args.scenario,
    )
    started = time.monotonic()
    with _StopOnSignal() as stop:
        if live:
            events: Iterator[dict[str, Any]] = _paced(scenario.draw, args, stop, producer)
        else:
            count = args.count
            if count is None:
                count = round(args.backfill_days * BACKFILL_EVENTS_PER_DAY)
            events = scenario.backfill(
                count, args.backfill_days, end_ms, newest_first=args.newest_first
            )
        for n, event in enumerate(events, start=1):
            producer.send(event)
            if n % 10_000 == 0 and stop.requested:
                break
    summary: dict[str, Any] = {
        "mode": "live" if live else "backfill",
        "seed": seed,
        "topic": settings.kafka.topic,
        "scenario": args.scenario,
    }
    if widening is not None:
        summary["widening"] = {
            "icb": widening.icb,
            "from": time.strftime("%Y-%m-%d", time.gmtime(widening.start_ms / 1000)),
            "per_day": widening.per_day,
            "activities": sorted(widening.activities),
        }
    return _finish(producer, args, started, summary)


def _widening(
    args: argparse.Namespace, data: ScenarioData, icbs: frozenset[str], start_ms: int
) -> Widening:
    """The ``widening_gap`` scenario from the flags, checked against the reference data."""
    if args.widen_icb is not None:
        icb, flag = args.widen_icb.strip().upper(), "--widen-icb"
    elif len(icbs) == 1:
        (icb,), flag = icbs, "--icb"
    else:
        raise ConfigError(
            "--scenario widening_gap needs the ICB to widen: --widen-icb ODS (all England "
            "published, that ICB widens) or a single --icb ODS (only its residents), e.g. QOP"
        )
    if icb not in data.lsoas_of_icb:
        known = sorted(data.lsoas_of_icb)
        raise ConfigError(
            f"{flag} {icb!r} is not an ICB ODS code in the reference data: use e.g. QOP "
            f"(NHS Greater Manchester); the {len(known)} known: {', '.join(known)}"
        )
    if icbs and icb not in icbs:
        raise ConfigError(f"{flag} {icb} is not among the --icb ICBs ({', '.join(sorted(icbs))})")
    from gapwatch.publisher.scenario import ACTIVITY_CLASSES

    activities = DEFAULT_ACTIVITIES
    if args.widen_activity is not None:
        activities = frozenset(a.strip() for a in args.widen_activity.split(",") if a.strip())
        unknown = sorted(activities - set(ACTIVITY_CLASSES))
        if unknown or not activities:
            raise ConfigError(
                f"--widen-activity {args.widen_activity!r}: expected a comma-separated list "
                f"of {', '.join(ACTIVITY_CLASSES)}, e.g. ed,emergency"
            )
    per_day = DEFAULT_PER_DAY if args.widen_per_day is None else args.widen_per_day
    if not math.isfinite(per_day):
        raise ConfigError("--widen-per-day must be a finite number")
    try:
        return Widening(icb, start_ms, per_day, activities)
    except ConfigError as exc:
        raise ConfigError(f"--scenario widening_gap: {exc}") from exc


def _paced(
    make: Callable[[int], list[dict[str, Any]]],
    args: argparse.Namespace,
    stop: _StopOnSignal,
    producer: EncounterProducer,
) -> Iterator[dict[str, Any]]:
    """Draws at ``args.rate`` per second against the monotonic clock, stamped with the
    wall clock; sleeps at most 0.1 s at a time so signals and part-filled batches are
    served promptly. A draw is one event, plus a widening's extra patients."""
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
            yield from make(now_ms)
            sent += 1
        producer.flush_due()
        time.sleep(max(0.0, min(0.1, start + sent / rate - time.monotonic())))


def _run_file(args: argparse.Namespace, settings: Settings, codec: AvroCodec) -> int:
    limits = Limits(
        retention_ms=settings.ingest.day_retention_days * DAY_MS,
        future_skew_ms=settings.ingest.future_skew_s * 1000,
    )
    parser = EventLineParser(
        codec, settings.schemas_dir, time.time_ns() // 1_000_000, limits, _pseudonymiser(settings)
    )
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


def _pseudonymiser(settings: Settings) -> Pseudonymiser | None:
    """The trust's pseudonymiser, if a key is configured; a short key stops the run."""
    secret = settings.publisher.person_key_secret
    if secret is None:
        return None
    try:
        return Pseudonymiser(secret.get_secret_value().encode("utf-8"))
    except ValueError as exc:
        raise ConfigError(f"publisher.person_key_secret: {exc}") from exc


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
