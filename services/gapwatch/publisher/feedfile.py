"""Checking a trust's JSON-lines feed file, line by line, before anything is sent.

``gapwatch publish --from-file`` lets a trust test its feed: each line must be an
EncounterEvent the ingest would accept, so it is checked against the Avro schema and
the ingest contract (``core.validation``) here, and every bad line is reported with its
number and reason. Nothing here touches Kafka; the CLI in ``command`` does the sending.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from gapwatch.adapters.avro_codec import EVENT_SCHEMA, AvroCodec
from gapwatch.core.validation import Limits, validate

__all__ = ["EventLineParser", "LineError", "read_event_lines"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class LineError:
    line: int
    reason: str
    """invalid_json, not_an_object, unknown_field, invalid_time, schema, or a
    ``core.validation`` reason (invalid_field, dataset_mismatch, too_late, ...)."""
    detail: str


class EventLineParser:
    """Turns one JSON line into an event the ingest would accept, or says why not.

    ``occurred_at`` may be epoch ms or an ISO 8601 time with an offset (a time without
    one is ambiguous across the clock change, so it is rejected). Unknown fields are
    rejected rather than silently dropped by the encoder.
    """

    def __init__(self, codec: AvroCodec, schemas_dir: Path, now_ms: int, limits: Limits) -> None:
        doc = json.loads((schemas_dir / f"{EVENT_SCHEMA}.avsc").read_text())
        self._defaults = {f["name"]: f.get("default") for f in doc["fields"]}
        self._required = [f["name"] for f in doc["fields"] if "default" not in f]
        # fastavro's enum error ("'x' is not in list") names neither field nor choices.
        self._symbols = {
            f["name"]: f["type"]["symbols"]
            for f in doc["fields"]
            if isinstance(f["type"], dict) and f["type"].get("type") == "enum"
        }
        self._codec = codec
        self._now_ms = now_ms
        self._limits = limits

    def parse(self, line_no: int, text: str) -> dict[str, Any] | LineError:
        try:
            record = json.loads(text)
        except ValueError as exc:
            return LineError(line_no, "invalid_json", str(exc))
        if not isinstance(record, dict):
            return LineError(line_no, "not_an_object", f"a JSON {type(record).__name__}")
        unknown = sorted(set(record) - set(self._defaults))
        if unknown:
            return LineError(line_no, "unknown_field", ", ".join(unknown))
        occurred = record.get("occurred_at")
        if isinstance(occurred, str):
            try:
                stamp = datetime.fromisoformat(occurred)
            except ValueError:
                return LineError(line_no, "invalid_time", f"occurred_at {occurred!r} is not ISO")
            if stamp.tzinfo is None:
                return LineError(line_no, "invalid_time", "occurred_at has no UTC offset")
            record["occurred_at"] = (stamp - _EPOCH) // timedelta(milliseconds=1)
        elif isinstance(occurred, bool) or not isinstance(occurred, int | None):
            return LineError(line_no, "invalid_time", "occurred_at must be epoch ms or ISO 8601")
        missing = [name for name in self._required if record.get(name) is None]
        if missing:
            return LineError(line_no, "schema", "missing or null: " + ", ".join(missing))
        for name, symbols in self._symbols.items():
            if record[name] not in symbols:
                return LineError(
                    line_no, "schema", f"{name} {record[name]!r} is not one of {', '.join(symbols)}"
                )
        event = {**self._defaults, **record}
        try:
            self._codec.encode_event(event)
        except Exception as exc:  # fastavro raises ValueError/TypeError/KeyError by field
            return LineError(line_no, "schema", f"{type(exc).__name__}: {exc}"[:300])
        rejection = validate(event, self._now_ms, self._limits)
        if rejection is not None:
            return LineError(line_no, rejection.reason, rejection.detail)
        return event


def read_event_lines(
    lines: Iterable[str], parser: EventLineParser
) -> tuple[list[dict[str, Any]], list[LineError]]:
    """Parse every non-blank line (numbered from 1); valid events and errors, in order."""
    events: list[dict[str, Any]] = []
    errors: list[LineError] = []
    for line_no, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        result = parser.parse(line_no, text)
        if isinstance(result, LineError):
            errors.append(result)
        else:
            events.append(result)
    return events, errors
