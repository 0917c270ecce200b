"""``gapwatch publish --from-file``: each JSON line either becomes an event the ingest
would accept or is reported with its line number and reason. No broker needed."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from gapwatch.adapters.avro_codec import AvroCodec
from gapwatch.core.validation import Limits
from gapwatch.core.windows import DAY_MS
from gapwatch.publisher import command
from gapwatch.publisher.feedfile import EventLineParser, LineError, read_event_lines
from gapwatch.settings import Settings, repo_root

SCHEMAS = repo_root() / "schemas"
NOW_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
LIMITS = Limits(retention_ms=35 * DAY_MS, future_skew_ms=900_000)

GOOD: dict[str, Any] = {
    "event_id": "3f1c2a9e-5b7d-4c1e-9a2b-0d4e6f8a1b3c",
    "event_type": "ed_departure",
    "occurred_at": NOW_MS - 3_600_000,
    "provider_code": "R0A",
    "dataset": "ECDS",
    "person_key": "9c2f" * 16,
    "age_years": 42,
    "sex": "2",
    "ethnic_category": "A",
    "lsoa_code": "E01004766",
    "minutes_in_department": 250,
}


@pytest.fixture(scope="module")
def parser() -> EventLineParser:
    return EventLineParser(AvroCodec(SCHEMAS), SCHEMAS, NOW_MS, LIMITS)


def _line(**changes: Any) -> str:
    record = {**GOOD, **changes}
    return json.dumps({k: v for k, v in record.items() if v is not ...})


def test_a_valid_line_becomes_the_event_with_defaults_filled(parser: EventLineParser) -> None:
    event = parser.parse(1, _line())
    assert isinstance(event, dict)
    assert {k: event[k] for k in GOOD} == GOOD
    assert event["postcode"] is None and event["weeks_waiting"] is None


def test_iso_times_with_an_offset_are_converted_to_epoch_ms(parser: EventLineParser) -> None:
    event = parser.parse(1, _line(occurred_at="2025-12-31T23:00:00.123Z"))
    assert isinstance(event, dict) and event["occurred_at"] == NOW_MS - 3_600_000 + 123
    summer = parser.parse(1, _line(occurred_at="2025-12-31T23:00:00+01:00"))
    assert isinstance(summer, dict) and summer["occurred_at"] == NOW_MS - 7_200_000


@pytest.mark.parametrize(
    ("text", "reason", "detail"),
    [
        ("{not json", "invalid_json", ""),
        ("[1, 2]", "not_an_object", "list"),
        (_line(colour="blue"), "unknown_field", "colour"),
        (_line(occurred_at="2025-12-31T23:00:00"), "invalid_time", "offset"),
        (_line(occurred_at="yesterday"), "invalid_time", "ISO"),
        (_line(occurred_at=1.5e12), "invalid_time", ""),
        (_line(occurred_at=True), "invalid_time", ""),
        (_line(person_key=...), "schema", "person_key"),
        (_line(age_years="42"), "schema", "age_years"),
        (_line(sex=None), "schema", "sex"),
        (_line(sex=1), "schema", "sex"),
        (_line(occurred_at=None), "schema", "occurred_at"),
        (_line(event_type="teleport"), "schema", "event_type 'teleport' is not one of ed_arr"),
        (_line(dataset=None), "schema", "dataset"),
        (_line(dataset="APC"), "dataset_mismatch", "ECDS"),
        (_line(event_id="42"), "invalid_field", "UUID"),
        (_line(provider_code="r0a"), "invalid_field", "ODS"),
        (_line(occurred_at=NOW_MS - 40 * DAY_MS), "too_late", ""),
        (_line(occurred_at=NOW_MS + 3_600_000), "future_timestamp", ""),
    ],
)
def test_bad_lines_are_rejected_with_a_reason(
    parser: EventLineParser, text: str, reason: str, detail: str
) -> None:
    result = parser.parse(7, text)
    assert isinstance(result, LineError)
    assert (result.line, result.reason) == (7, reason)
    assert detail in result.detail


def test_lines_are_numbered_from_one_counting_blank_lines(parser: EventLineParser) -> None:
    lines = [_line(), "", "oops", _line(event_id="3f1c2a9e-5b7d-4c1e-9a2b-0d4e6f8a1b3d"), "  \n"]
    events, errors = read_event_lines(lines, parser)
    assert [e["event_id"][-1] for e in events] == ["c", "d"]
    assert [(e.line, e.reason) for e in errors] == [(3, "invalid_json")]


def _run_cli(tmp_path: Path, lines: list[str]) -> int:
    path = tmp_path / "feed.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    top = argparse.ArgumentParser()
    command.register(top.add_subparsers())
    args = top.parse_args(["publish", "--from-file", str(path), "--check-only"])
    rc: int = args.func(args, Settings(schemas_dir=SCHEMAS))
    return rc


def test_check_only_reports_rejections_and_exits_non_zero(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recent = _line(occurred_at="2020-01-01T00:00:00Z")  # outside any retention: too_late
    rc = _run_cli(tmp_path, [_line(occurred_at=None), recent])
    summary = json.loads(capsys.readouterr().out)
    assert rc == 1
    assert summary["valid_lines"] == 0 and summary["rejected_lines"] == 2
    assert [r["line"] for r in summary["rejections"]] == [1, 2]
    assert summary["rejections"][1]["reason"] == "too_late"


def test_check_only_exits_zero_when_every_line_is_valid(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    now = datetime.now(UTC).isoformat()
    rc = _run_cli(tmp_path, [_line(occurred_at=now)])
    summary = json.loads(capsys.readouterr().out)
    assert rc == 0 and summary["valid_lines"] == 1 and summary["rejected_lines"] == 0
