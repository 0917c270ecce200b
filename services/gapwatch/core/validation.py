"""The event contract beyond what Avro itself enforces.

A violation returns a ``Rejection`` (a value, not an exception) so the caller dead-letters
the event with the reason and moves on. Bad *demographic* codes are not violations: the
event is counted in the ``unknown`` group instead (see ``enrich``).

Identifiers are checked first. An NHS number, or a postcode outside ``postcode``, must
never reach a count, a key or a log, and later checks may quote field values. Every
detail is redacted (``identifiers.redact``) because it travels in a dead letter's
headers, which ``gapwatch dlq`` shows to anyone who reads the topic.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from gapwatch.core.identifiers import event_identifier_fields, redact

__all__ = ["REASONS", "Limits", "Rejection", "validate"]

REASONS: Final[dict[str, str]] = {
    "undecodable": "bytes are not Confluent-framed Avro of a known schema",
    "unknown_schema_id": "the schema id in the frame is not in schemas/registry.json",
    "identifier_in_field": "an NHS number or full postcode in a field not meant for it",
    "invalid_field": "a required field is empty or malformed",
    "dataset_mismatch": "event_type does not belong to the dataset",
    "too_late": "occurred_at is older than the retention horizon",
    "future_timestamp": "occurred_at is further in the future than the allowed skew",
}
"""Dead-letter reason codes (the ``gapwatch.reason`` header)."""

_UUID: Final = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
)
_ODS: Final = re.compile(r"[A-Z0-9]{3,6}")
_DATASET_OF: Final = {
    "ed_arrival": "ECDS",
    "ed_departure": "ECDS",
    "admission": "APC",
    "outpatient_appointment": "OPA",
    "waiting_list_snapshot": "WLMDS",
}


@dataclass(frozen=True, slots=True)
class Limits:
    retention_ms: int
    """Events older than now - retention_ms cannot be bucketed: ``too_late``."""
    future_skew_ms: int
    """Events later than now + skew are clock errors: ``future_timestamp``."""


@dataclass(frozen=True, slots=True)
class Rejection:
    reason: str
    detail: str


def validate(record: Mapping[str, object], now_ms: int, limits: Limits) -> Rejection | None:
    """Check one decoded event; None means it may be counted.

    A rejection's detail names fields and kinds. It never quotes an identifier.
    """
    misplaced = event_identifier_fields(record)
    if misplaced:
        return Rejection(
            "identifier_in_field", "; ".join(f"{kind} in {name}" for name, kind in misplaced)
        )
    rejection = _contract(record, now_ms, limits)
    if rejection is None:
        return None
    return Rejection(rejection.reason, redact(rejection.detail))


def _contract(record: Mapping[str, object], now_ms: int, limits: Limits) -> Rejection | None:
    event_id = record.get("event_id")
    if not isinstance(event_id, str) or _UUID.fullmatch(event_id) is None:
        return Rejection("invalid_field", f"event_id is not a UUID: {str(event_id)[:64]!r}")
    provider = record.get("provider_code")
    if not isinstance(provider, str) or _ODS.fullmatch(provider) is None:
        return Rejection("invalid_field", f"provider_code is not an ODS code: {provider!r}")
    person = record.get("person_key")
    if not isinstance(person, str) or not person.strip():
        return Rejection("invalid_field", "person_key is empty")
    expected = _DATASET_OF.get(str(record.get("event_type")))
    if expected != record.get("dataset"):
        return Rejection(
            "dataset_mismatch",
            f"event_type {record.get('event_type')} belongs to {expected}, "
            f"not {record.get('dataset')}",
        )
    occurred = record.get("occurred_at")
    if not isinstance(occurred, int) or occurred <= 0:
        return Rejection("invalid_field", f"occurred_at is not a positive epoch ms: {occurred!r}")
    if occurred < now_ms - limits.retention_ms:
        return Rejection("too_late", f"occurred_at {occurred} is older than the retention horizon")
    if occurred > now_ms + limits.future_skew_ms:
        return Rejection("future_timestamp", f"occurred_at {occurred} is in the future")
    return None
