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
from gapwatch.core.errors import ConfigError
from gapwatch.core.validation import Limits
from gapwatch.core.windows import DAY_MS
from gapwatch.publisher import command
from gapwatch.publisher.feedfile import EventLineParser, LineError, read_event_lines
from gapwatch.publisher.pseudonym import Pseudonymiser
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


KEY = b"a trust's own person-key secret, 32+ bytes"
NHS = "9434765919"


@pytest.fixture(scope="module")
def keyed_parser() -> EventLineParser:
    return EventLineParser(AvroCodec(SCHEMAS), SCHEMAS, NOW_MS, LIMITS, Pseudonymiser(KEY))


def test_an_nhs_number_becomes_the_person_key_and_is_dropped(
    keyed_parser: EventLineParser,
) -> None:
    event = keyed_parser.parse(1, _line(person_key=..., nhs_number="943 476 5919"))
    assert isinstance(event, dict)
    assert event["person_key"] == Pseudonymiser(KEY).person_key(NHS)
    assert "nhs_number" not in event
    assert keyed_parser.parse(2, _line(person_key=..., nhs_number=None)) == LineError(
        2, "schema", "missing or null: person_key"
    )


@pytest.mark.parametrize(
    ("changes", "reason", "detail"),
    [
        ({"person_key": ..., "nhs_number": "9434765918"}, "invalid_nhs_number", "check digit"),
        ({"nhs_number": NHS}, "nhs_number_and_person_key", "not both"),
        ({"person_key": NHS}, "identifier_in_field", "nhs_number in person_key"),
        ({"site_code": "M15 4AB"}, "identifier_in_field", "postcode in site_code"),
        ({"event_type": f"x{NHS}"}, "schema", "event_type 'x<nhs>' is not"),  # redacted
    ],
)
def test_identifier_problems_are_line_errors_that_never_quote_the_identifier(
    keyed_parser: EventLineParser, changes: dict[str, Any], reason: str, detail: str
) -> None:
    result = keyed_parser.parse(3, _line(**changes))
    assert isinstance(result, LineError)
    assert (result.reason, detail in result.detail) == (reason, True)
    assert NHS[:6] not in result.detail and "M15" not in result.detail


def test_an_nhs_number_without_a_configured_key_is_a_line_error(parser: EventLineParser) -> None:
    result = parser.parse(4, _line(person_key=..., nhs_number=NHS))
    assert isinstance(result, LineError) and result.reason == "no_person_key_secret"
    assert "GAPWATCH_PUBLISHER_PERSON_KEY_SECRET" in result.detail


def _run_keyed_cli(tmp_path: Path, lines: list[str], secret: str | None) -> int:
    path = tmp_path / "feed.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    top = argparse.ArgumentParser()
    command.register(top.add_subparsers())
    args = top.parse_args(["publish", "--from-file", str(path), "--check-only"])
    settings = Settings(schemas_dir=SCHEMAS, publisher={"person_key_secret": secret})
    rc: int = args.func(args, settings)
    return rc


def test_the_cli_pseudonymises_with_the_configured_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    now = datetime.now(UTC).isoformat()
    lines = [_line(occurred_at=now, person_key=..., nhs_number=NHS)]
    assert _run_keyed_cli(tmp_path, lines, KEY.decode()) == 0
    assert json.loads(capsys.readouterr().out)["valid_lines"] == 1
    assert _run_keyed_cli(tmp_path, lines, None) == 1
    out = capsys.readouterr().out
    assert json.loads(out)["rejections"][0]["reason"] == "no_person_key_secret"
    assert NHS not in out


def test_a_short_configured_key_stops_the_cli(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="at least 32 bytes"):
        _run_keyed_cli(tmp_path, [_line()], "too short")
