"""``gapwatch dlq``: list dead letters with their reasons, and re-publish chosen ones once
the cause is fixed.

The dead-letter topic is read with ``assign()`` on every partition from the start: no
group is joined and nothing is committed (librdkafka needs a ``group.id``, so a throwaway
one is set). The end of each partition is found from the fetch responses, not from
ListOffsets, whose "latest" answer is wrong on Tansu (docs/tansu.md §4, §7): a partition
is finished at its ``PARTITION_EOF`` event, or once the next offset reaches the high
watermark the last fetch reported (Tansu sends no EOF for a start offset past the end).

Exit codes: 0 ok, 1 no letter matched or a delivery failed, 2 broker unavailable, topic
missing, the read did not reach the end in time, or bad arguments.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)

from gapwatch.core.validation import REASONS
from gapwatch.ingest.dead_letters import (
    DeadLetterRecord,
    count_by_reason,
    format_summary,
    format_table,
    parse_offsets,
    parse_record,
    select,
)
from gapwatch.settings import Settings

__all__ = [
    "REPUBLISHED_FROM_HEADER",
    "DeadLetterRecord",
    "Delivery",
    "ReadProgress",
    "ReadResult",
    "count_by_reason",
    "format_summary",
    "format_table",
    "parse_offsets",
    "parse_record",
    "read_dead_letters",
    "register",
    "republish",
    "select",
]

logger = logging.getLogger(__name__)

REPUBLISHED_FROM_HEADER = "gapwatch.republished_from"
_FETCH_WAIT_MS = 100
"""Short fetch wait: an idle partition's empty fetch (and so its EOF) returns in 0.1 s."""


class DlqError(Exception):
    """The dead-letter topic cannot be read or written as asked (exit code 2)."""


class MissingTopic(DlqError):
    """The broker answers but has no such topic."""


class ReadProgress:
    """Which assigned partitions have been read to their end.

    ``next_offset`` starts at the first offset asked for (``None`` for "the beginning",
    then the low watermark stands in) and follows the messages consumed.
    """

    def __init__(self, partitions: Iterable[int], start_offset: int | None = None) -> None:
        self._next: dict[int, int | None] = dict.fromkeys(partitions, start_offset)
        self._done: set[int] = set()

    def consumed(self, partition: int, offset: int) -> None:
        self._next[partition] = offset + 1

    def reached_eof(self, partition: int) -> None:
        self._done.add(partition)

    def saw_watermarks(self, partition: int, low: int, high: int) -> None:
        """Watermarks from the last fetch response (negative when none arrived yet)."""
        if high < 0 or partition in self._done:
            return
        next_offset = self._next[partition]
        if next_offset is None:
            next_offset = max(low, 0)
        if next_offset >= high:
            self._done.add(partition)

    @property
    def unfinished(self) -> list[int]:
        return sorted(set(self._next) - self._done)


@dataclass(frozen=True, slots=True)
class ReadResult:
    records: list[DeadLetterRecord]
    unfinished: list[int]
    """Partitions not read to the end before the timeout (the list may be incomplete)."""


def _client_config(bootstrap: str) -> dict[str, Any]:
    rdkafka = logging.getLogger("gapwatch.ingest.dlq.librdkafka")
    return {
        "bootstrap.servers": bootstrap,
        "client.id": "gapwatch-dlq",
        "logger": rdkafka,
        # A down broker makes librdkafka log every reconnect; the command reports it once
        # itself, so its lines (syslog levels, 3 = error) show only with --log-level DEBUG.
        "log_level": 7 if rdkafka.isEnabledFor(logging.DEBUG) else 2,
    }


def read_dead_letters(
    bootstrap: str, topic: str, *, since_offset: int | None = None, timeout_s: float = 30.0
) -> ReadResult:
    """Every letter of ``topic`` (from ``since_offset`` in each partition, if given)."""
    consumer = Consumer(
        {
            **_client_config(bootstrap),
            "group.id": f"gapwatch-dlq-reader-{uuid.uuid4().hex[:12]}",  # never joined
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "enable.partition.eof": True,
            # Only used if since_offset is past the end on a broker that says so: reading
            # from the start then is correct (we filter), "latest" would ask ListOffsets.
            "auto.offset.reset": "earliest",
            "fetch.wait.max.ms": _FETCH_WAIT_MS,
        }
    )
    try:
        partitions = _partitions(consumer, topic, timeout_s)
        start = OFFSET_BEGINNING if since_offset is None else since_offset
        consumer.assign([TopicPartition(topic, p, start) for p in partitions])
        progress = ReadProgress(partitions, since_offset)
        records = _read_to_end(consumer, topic, progress, timeout_s)
    finally:
        consumer.close()
    return ReadResult(select(records, since_offset=since_offset), progress.unfinished)


def _partitions(client: Consumer | Producer, topic: str, timeout_s: float) -> list[int]:
    try:
        metadata = client.list_topics(topic, timeout=timeout_s)
    except KafkaException as exc:
        raise DlqError(f"broker unavailable: {_error_text(exc.args[0])}") from exc
    described = metadata.topics.get(topic)
    if described is None or described.error is not None or not described.partitions:
        why = "no metadata" if described is None else _error_text(described.error)
        raise MissingTopic(f"topic {topic} is not available ({why})")
    return sorted(described.partitions)


def _error_text(error: object) -> str:
    if isinstance(error, KafkaError):
        return str(error.str())
    return "no partitions" if error is None else str(error)


def _read_to_end(
    consumer: Consumer, topic: str, progress: ReadProgress, timeout_s: float
) -> list[DeadLetterRecord]:
    records: list[DeadLetterRecord] = []
    deadline = time.monotonic() + timeout_s
    while progress.unfinished and time.monotonic() < deadline:
        for msg in consumer.consume(num_messages=1000, timeout=0.1):
            partition, offset = msg.partition(), msg.offset()
            error = msg.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF and partition is not None:
                    progress.reached_eof(partition)
                elif error.fatal():
                    raise DlqError(f"reading {topic} failed: {error}")
                else:
                    logger.warning("read error topic=%s error=%s", topic, error)
                continue
            if partition is None or offset is None:
                continue
            progress.consumed(partition, offset)
            records.append(parse_record(partition, offset, msg.key(), msg.value(), msg.headers()))
        for partition in progress.unfinished:
            try:
                low, high = consumer.get_watermark_offsets(
                    TopicPartition(topic, partition), cached=True
                )
            except KafkaException:
                continue
            progress.saw_watermarks(partition, low, high)
    return records


@dataclass(slots=True)
class Delivery:
    """One letter to re-publish to ``topic``; ``republish`` fills in where it landed
    (``partition``, ``offset``) or why it did not (``error``)."""

    record: DeadLetterRecord
    topic: str
    partition: int | None = None
    offset: int | None = None
    error: str | None = None


def republish(
    bootstrap: str, dlq_topic: str, deliveries: Sequence[Delivery], timeout_s: float
) -> None:
    """Produce each letter's payload and key unchanged to ``delivery.topic`` and wait for
    every acknowledgement; outcomes are written into the ``Delivery`` objects.

    Raises ``DlqError``, before anything is sent, when a target topic does not exist.
    """
    producer = Producer(
        {
            **_client_config(bootstrap),
            "enable.idempotence": True,
            "acks": "all",
            # A mistyped --to must fail, not create a topic (Tansu creates on metadata).
            "allow.auto.create.topics": False,
            "delivery.timeout.ms": int(timeout_s * 1000),
        }
    )
    for target in sorted({d.topic for d in deliveries}):
        _partitions(producer, target, timeout_s)
    for delivery in deliveries:
        record = delivery.record

        def on_delivery(err: KafkaError | None, msg: Message, d: Delivery = delivery) -> None:
            if err is not None:
                d.error = _error_text(err)
            else:
                d.partition, d.offset = msg.partition(), msg.offset()

        origin = f"{dlq_topic}:{record.partition}:{record.offset}"
        for _ in range(100):
            try:
                producer.produce(
                    delivery.topic,
                    record.payload,
                    record.key,
                    on_delivery=on_delivery,
                    headers=[(REPUBLISHED_FROM_HEADER, origin.encode())],
                )
                break
            except BufferError:
                producer.poll(0.1)  # local queue full: serve delivery reports
            except KafkaException as exc:  # refused locally, e.g. larger than message.max.bytes
                delivery.error = _error_text(exc.args[0])
                break
        else:
            delivery.error = "the producer queue stayed full for 10 s"
    producer.flush(timeout_s + 5)
    for delivery in deliveries:
        if delivery.error is None and delivery.offset is None:
            delivery.error = f"no delivery report within {timeout_s:.0f} s"


# --- the command ------------------------------------------------------------------------


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "dlq", help="list dead letters with their reasons; re-publish chosen ones after a fix"
    )
    actions = parser.add_subparsers(dest="dlq_action", required=True)
    listing = actions.add_parser(
        "list",
        help="list the letters in the dead-letter topic (exit 1 when none match)",
    )
    listing.add_argument("--limit", type=_positive, help="show at most N letters")
    output = listing.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="print a JSON list of letters")
    output.add_argument("--summary", action="store_true", help="print counts per reason only")
    _common(listing)
    listing.set_defaults(func=_run_list)

    again = actions.add_parser(
        "republish",
        help="re-publish chosen letters to their source topic",
        description="Re-produce the chosen letters' payload bytes unchanged, with the same "
        "key, to the topic they came from (header gapwatch.source_topic, or --to), adding "
        f"the header {REPUBLISHED_FROM_HEADER}=<dlq topic>:<partition>:<offset>. Use it "
        "after the cause is fixed outside the message, e.g. reference data updated or a "
        "retention setting changed; the bytes are never edited. Exit 1 when nothing "
        "matched or any delivery failed.",
    )
    chosen = again.add_mutually_exclusive_group(required=True)
    chosen.add_argument(
        "--reason", action="append", metavar="R", help="every letter with this reason"
    )
    chosen.add_argument(
        "--offsets",
        type=parse_offsets,
        metavar="P:O[,P:O...]",
        help="exactly these dead-letter partition:offset pairs (all must exist)",
    )
    again.add_argument("--to", metavar="TOPIC", help="produce here instead of the source topic")
    again.add_argument("--dry-run", action="store_true", help="show what would be sent")
    _common(again, reason=False)
    again.set_defaults(func=_run_republish)


def _common(parser: argparse.ArgumentParser, *, reason: bool = True) -> None:
    if reason:
        parser.add_argument(
            "--reason", action="append", metavar="R", help="only this reason (repeatable)"
        )
    parser.add_argument(
        "--since-offset",
        type=_non_negative,
        metavar="N",
        help="only letters at dead-letter offset N or later (in every partition)",
    )
    parser.add_argument(
        "--timeout",
        type=_seconds,
        default=30.0,
        metavar="S",
        help="seconds to wait for the broker, to read to the end, and for each delivery "
        "(default 30)",
    )


def _non_negative(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number >= 0")
    return int(text)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of seconds")
    return value


def _positive(text: str) -> int:
    value = _non_negative(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _read(args: argparse.Namespace, settings: Settings) -> list[DeadLetterRecord] | None:
    """Every letter from ``--since-offset``, or None after reporting why not."""
    topic = settings.kafka.dlq_topic
    for reason in args.reason or ():
        if reason not in REASONS:
            sys.stderr.write(f"note: {reason!r} is not a known reason ({', '.join(REASONS)})\n")
    try:
        result = read_dead_letters(
            settings.kafka.bootstrap, topic, since_offset=args.since_offset, timeout_s=args.timeout
        )
    except DlqError as exc:
        hint = "; run `gapwatch topics create`?" if isinstance(exc, MissingTopic) else ""
        sys.stderr.write(f"dlq: {exc}{hint} (bootstrap {settings.kafka.bootstrap})\n")
        return None
    if result.unfinished:
        sys.stderr.write(
            f"dlq: {topic} partitions {result.unfinished} not read to the end within "
            f"{args.timeout:.0f} s; the broker is slow or unavailable (raise --timeout)\n"
        )
        return None
    return result.records


def _nothing_matched(records: Sequence[DeadLetterRecord], topic: str) -> int:
    present = ", ".join(f"{k}={v}" for k, v in count_by_reason(records).items()) or "none"
    sys.stderr.write(f"no dead letters matched in {topic} (reasons present: {present})\n")
    return 1


def _run_list(args: argparse.Namespace, settings: Settings) -> int:
    topic = settings.kafka.dlq_topic
    records = _read(args, settings)
    if records is None:
        return 2
    matched = select(records, reasons=args.reason)
    if not matched:
        return _nothing_matched(records, topic)
    counts = count_by_reason(matched)
    shown = matched[: args.limit] if args.limit else matched
    if args.summary:
        sys.stdout.write(format_summary(counts) + "\n")
    elif args.json:
        sys.stdout.write(json.dumps([r.as_dict(topic) for r in shown], indent=2) + "\n")
    else:
        sys.stdout.write(format_table(shown) + "\n\n" + format_summary(counts) + "\n")
        if len(shown) < len(matched):
            sys.stdout.write(f"showing the first {len(shown)} of {len(matched)} letters\n")
    return 0


def _run_republish(args: argparse.Namespace, settings: Settings) -> int:
    topic, bootstrap = settings.kafka.dlq_topic, settings.kafka.bootstrap
    records = _read(args, settings)
    if records is None:
        return 2
    matched = select(records, reasons=args.reason, positions=args.offsets)
    if args.offsets is not None:
        missing = sorted(args.offsets - {(r.partition, r.offset) for r in matched})
        if missing:
            names = ", ".join(f"{p}:{o}" for p, o in missing)
            sys.stderr.write(f"no dead letter at {names} in {topic}; nothing republished\n")
            return 1
    if not matched:
        return _nothing_matched(records, topic)
    unrouted = [r for r in matched if not (args.to or r.source_topic)]
    if unrouted:
        names = ", ".join(f"{r.partition}:{r.offset}" for r in unrouted)
        sys.stderr.write(f"letters {names} have no gapwatch.source_topic header: use --to\n")
        return 2
    deliveries = [Delivery(r, args.to or r.source_topic or "") for r in matched]
    if args.dry_run:
        for d in deliveries:
            sys.stdout.write(f"would republish {_describe(d)} -> {d.topic}\n")
        sys.stdout.write(f"dry run: {len(deliveries)} letter(s) matched, nothing sent\n")
        return 0
    try:
        republish(bootstrap, topic, deliveries, args.timeout)
    except DlqError as exc:
        sys.stderr.write(f"dlq: {exc}; nothing republished (bootstrap {bootstrap})\n")
        return 2
    failed = [d for d in deliveries if d.error is not None]
    for d in deliveries:
        if d.error is None:
            sys.stdout.write(f"republished {_describe(d)} -> {d.topic}:{d.partition}:{d.offset}\n")
        else:
            sys.stderr.write(f"FAILED {_describe(d)} -> {d.topic}: {d.error}\n")
    sys.stdout.write(
        f"{len(deliveries) - len(failed)} of {len(deliveries)} letter(s) republished\n"
    )
    return 1 if failed else 0


def _describe(d: Delivery) -> str:
    r = d.record
    return (
        f"dlq {r.partition}:{r.offset} ({r.reason or '-'}, trust {r.trust or '-'}, "
        f"{len(r.payload)} bytes)"
    )
