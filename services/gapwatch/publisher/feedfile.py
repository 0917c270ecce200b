"""Checking a trust's JSON-lines feed file, line by line, before anything is sent.

``gapwatch publish --from-file`` lets a trust test its feed: each line must be an
EncounterEvent the ingest would accept, so it is checked against the Avro schema and
the ingest contract (``core.validation``) here, and every bad line is reported with its
number and reason. Nothing here touches Kafka; the CLI in ``command`` does the sending.

A line may give ``nhs_number`` instead of ``person_key``. It is pseudonymised here with
the trust's key and dropped, so it never reaches the producer. A line with an
``nhs_number`` but no key configured is a line error, not a send. Details of line errors
are redacted (``identifiers.redact``) because they are logged and printed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from gapwatch.adapters.avro_codec import EVENT_SCHEMA, AvroCodec
from gapwatch.core.identifiers import redact
from gapwatch.core.validation import Limits, validate
from gapwatch.publisher.producer import NHS_NUMBER_FIELD
from gapwatch.publisher.pseudonym import InvalidNhsNumber, Pseudonymiser

__all__ = ["EventLineParser", "LineError", "read_event_lines"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class LineError:
    line: int
    reason: str
    """invalid_json, not_an_object, unknown_field, invalid_time, schema,
    no_person_key_secret, invalid_nhs_number, nhs_number_and_person_key, or a
    ``core.validation`` reason (identifier_in_field, invalid_field, too_late, ...)."""
    detail: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "detail", redact(self.detail))


class EventLineParser:
    """Turns one JSON line into an event the ingest would accept, or says why not.

    ``occurred_at`` may be epoch ms or an ISO 8601 time with an offset (a time without
    one is ambiguous across the clock change, so it is rejected). Unknown fields are
    rejected rather than silently dropped by the encoder. ``nhs_number`` becomes
    ``person_key`` through ``pseudonymiser`` (the trust's key; None when none is set).
    """

    def __init__(
        self,
        codec: AvroCodec,
        schemas_dir: Path,
        now_ms: int,
        limits: Limits,
        pseudonymiser: Pseudonymiser | None = None,
    ) -> None:
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
        self._pseudonymiser = pseudonymiser

    def parse(self, line_no: int, text: str) -> dict[str, Any] | LineError:
        try:
            record = json.loads(text)
        except ValueError as exc:
            return LineError(line_no, "invalid_json", str(exc))
        if not isinstance(record, dict):
            return LineError(line_no, "not_an_object", f"a JSON {type(record).__name__}")
        if NHS_NUMBER_FIELD in record:
            refused = self._pseudonymise(line_no, record)
            if refused is not None:
                return refused
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

    def _pseudonymise(self, line_no: int, record: dict[str, Any]) -> LineError | None:
        """Replace ``nhs_number`` with ``person_key`` in ``record``, or say why not."""
        nhs_number = record.pop(NHS_NUMBER_FIELD)
        if nhs_number is None:
            return None
        if self._pseudonymiser is None:
            return LineError(
                line_no,
                "no_person_key_secret",
                "nhs_number given but no person-key secret is configured "
                "(GAPWATCH_PUBLISHER_PERSON_KEY_SECRET)",
            )
        if record.get("person_key"):
            return LineError(line_no, "nhs_number_and_person_key", "give one, not both")
        try:
            record["person_key"] = self._pseudonymiser.person_key(nhs_number)
        except InvalidNhsNumber as exc:
            return LineError(line_no, "invalid_nhs_number", str(exc))
        return None


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
