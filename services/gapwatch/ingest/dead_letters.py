"""Dead letters as values: a letter's headers parsed, letters selected by reason or
offset, and the table and summary ``gapwatch dlq`` prints. No I/O (``dlq`` reads and
writes the topic)."""

from __future__ import annotations

import argparse
from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

__all__ = [
    "DETAIL_WIDTH",
    "DeadLetterRecord",
    "Headers",
    "count_by_reason",
    "format_summary",
    "format_table",
    "parse_offsets",
    "parse_record",
    "select",
]

Headers = Mapping[str, str | bytes | None] | Sequence[tuple[str, str | bytes | None]]
"""What ``Message.headers()`` returns (a list of pairs; a mapping is accepted too)."""
DETAIL_WIDTH = 60
"""Characters of ``gapwatch.error_detail`` shown in the table (the header holds up to 1000)."""


@dataclass(frozen=True, slots=True)
class DeadLetterRecord:
    """One message of the dead-letter topic with its ``gapwatch.*`` headers parsed.

    A header that is missing or not a number reads as ``None``; the payload and key are
    the bytes as stored, so re-publishing sends exactly what the trust sent.
    """

    partition: int
    offset: int
    key: bytes | None
    payload: bytes
    reason: str | None
    detail: str
    source_topic: str | None
    source_partition: int | None
    source_offset: int | None
    batch_index: int | None
    service: str | None
    failed_at_ms: int | None

    @property
    def trust(self) -> str | None:
        return None if self.key is None else self.key.decode("utf-8", "replace")

    @property
    def source(self) -> str:
        parts = (self.source_topic, self.source_partition, self.source_offset)
        return ":".join("?" if p is None else str(p) for p in parts)

    @property
    def failed_at(self) -> str | None:
        """``failed_at_ms`` as UTC ISO 8601, e.g. ``2026-11-27T08:26:40.123Z``."""
        if self.failed_at_ms is None:
            return None
        moment = datetime.fromtimestamp(self.failed_at_ms / 1000, tz=UTC)
        return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")

    def as_dict(self, dlq_topic: str) -> dict[str, object]:
        return {
            "dlq_topic": dlq_topic,
            "dlq_partition": self.partition,
            "dlq_offset": self.offset,
            "reason": self.reason,
            "detail": self.detail,
            "source_topic": self.source_topic,
            "source_partition": self.source_partition,
            "source_offset": self.source_offset,
            "batch_index": self.batch_index,
            "trust": self.trust,
            "service": self.service,
            "failed_at_ms": self.failed_at_ms,
            "failed_at": self.failed_at,
            "payload_bytes": len(self.payload),
        }


def parse_record(
    partition: int,
    offset: int,
    key: bytes | None,
    payload: bytes | None,
    headers: Headers | None,
) -> DeadLetterRecord:
    """A dead letter from one consumed message (the last value wins for a repeated header)."""
    pairs = headers.items() if isinstance(headers, Mapping) else headers or ()
    text: dict[str, str] = {}
    for name, value in pairs:
        if isinstance(value, bytes):
            text[name] = value.decode("utf-8", "replace")
        elif value is not None:
            text[name] = value

    def number(name: str) -> int | None:
        try:
            return int(text[name])
        except (KeyError, ValueError):
            return None

    return DeadLetterRecord(
        partition=partition,
        offset=offset,
        key=key,
        payload=payload or b"",
        reason=text.get("gapwatch.reason"),
        detail=text.get("gapwatch.error_detail", ""),
        source_topic=text.get("gapwatch.source_topic"),
        source_partition=number("gapwatch.source_partition"),
        source_offset=number("gapwatch.source_offset"),
        batch_index=number("gapwatch.batch_index"),
        service=text.get("gapwatch.service"),
        failed_at_ms=number("gapwatch.failed_at_ms"),
    )


def parse_offsets(text: str) -> frozenset[tuple[int, int]]:
    """``"0:12,3:4"`` -> {(0, 12), (3, 4)}: dead-letter partition:offset pairs."""
    pairs: set[tuple[int, int]] = set()
    for item in text.split(","):
        partition, sep, offset = item.strip().partition(":")
        if not sep or not partition.isdigit() or not offset.isdigit():
            raise argparse.ArgumentTypeError(
                f"{item.strip()!r} is not PARTITION:OFFSET (e.g. 0:12,3:4)"
            )
        pairs.add((int(partition), int(offset)))
    return frozenset(pairs)


def select(
    records: Iterable[DeadLetterRecord],
    *,
    reasons: Collection[str] | None = None,
    positions: Collection[tuple[int, int]] | None = None,
    since_offset: int | None = None,
) -> list[DeadLetterRecord]:
    """The records matching every filter given, in (partition, offset) order."""
    chosen = [
        r
        for r in records
        if (not reasons or r.reason in reasons)
        and (positions is None or (r.partition, r.offset) in positions)
        and (since_offset is None or r.offset >= since_offset)
    ]
    return sorted(chosen, key=lambda r: (r.partition, r.offset))


def count_by_reason(records: Iterable[DeadLetterRecord]) -> dict[str, int]:
    """Letters per reason, most frequent first (a letter without the header: ``-``)."""
    counts = Counter(r.reason or "-" for r in records)
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def _clip(text: str, width: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def format_table(records: Sequence[DeadLetterRecord], detail_width: int = DETAIL_WIDTH) -> str:
    head = (
        "part",
        "offset",
        "reason",
        "source topic:partition:offset",
        "batch",
        "trust",
        "failed at (UTC)",
        "detail",
    )
    rows = [
        (
            str(r.partition),
            str(r.offset),
            r.reason or "-",
            r.source,
            "-" if r.batch_index is None else str(r.batch_index),
            r.trust or "-",
            r.failed_at or "-",
            _clip(r.detail, detail_width) or "-",
        )
        for r in records
    ]
    widths = [max(len(row[i]) for row in [head, *rows]) for i in range(len(head) - 1)]
    right = {0, 1, 4}  # numbers

    def line(cells: tuple[str, ...]) -> str:
        out = [
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=False))
        ]
        return "  ".join([*out, cells[-1]]).rstrip()

    return "\n".join(line(row) for row in [head, *rows])


def format_summary(counts: dict[str, int]) -> str:
    total = sum(counts.values())
    lines = [f"{reason:20} {n:8d}" for reason, n in counts.items()]
    return "\n".join([*lines, f"{'total':20} {total:8d}"])
