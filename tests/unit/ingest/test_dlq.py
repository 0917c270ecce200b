"""The broker-free parts of `gapwatch dlq`: headers to records, selection, the table, the
end-of-partition bookkeeping and the command line."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest
from confluent_kafka import KafkaError

from gapwatch.cli import build_parser, main
from gapwatch.ingest import dlq
from gapwatch.ingest.dlq import (
    DeadLetterRecord,
    ReadProgress,
    ReadResult,
    count_by_reason,
    format_summary,
    format_table,
    parse_offsets,
    parse_record,
    select,
)
from tests.conftest import NOW_MS

HEADERS = [
    ("gapwatch.reason", b"too_late"),
    ("gapwatch.error_detail", b"occurred_at 1 is older than the retention horizon"),
    ("gapwatch.source_topic", b"gapwatch.encounters.v1"),
    ("gapwatch.source_partition", b"7"),
    ("gapwatch.source_offset", b"12345"),
    ("gapwatch.service", b"gapwatch-ingest"),
    ("gapwatch.failed_at_ms", str(NOW_MS).encode()),
    ("gapwatch.batch_index", b"41"),
]


def record(
    partition: int = 0, offset: int = 0, reason: str | None = "too_late", **kw: object
) -> DeadLetterRecord:
    fields: dict[str, object] = {
        "key": b"R0A",
        "payload": b"\x00\x00\x00\x00\x01abc",
        "detail": "",
        "source_topic": "gapwatch.encounters.v1",
        "source_partition": 1,
        "source_offset": 2,
        "batch_index": None,
        "service": "gapwatch-ingest",
        "failed_at_ms": NOW_MS,
    }
    fields.update(kw)
    return DeadLetterRecord(partition=partition, offset=offset, reason=reason, **fields)  # type: ignore[arg-type]  # fields vary per test


def test_headers_written_by_the_ingest_worker_are_parsed_into_a_record() -> None:
    r = parse_record(3, 99, b"R0A", b"payload", HEADERS)
    assert r == DeadLetterRecord(
        partition=3,
        offset=99,
        key=b"R0A",
        payload=b"payload",
        reason="too_late",
        detail="occurred_at 1 is older than the retention horizon",
        source_topic="gapwatch.encounters.v1",
        source_partition=7,
        source_offset=12345,
        batch_index=41,
        service="gapwatch-ingest",
        failed_at_ms=NOW_MS,
    )
    assert r.trust == "R0A"
    assert r.source == "gapwatch.encounters.v1:7:12345"
    assert r.failed_at == "2026-11-27T11:46:40.000Z"


def test_missing_or_garbled_headers_read_as_none_and_never_raise() -> None:
    garbled = [
        ("gapwatch.source_offset", b"twelve"),
        ("gapwatch.failed_at_ms", None),
        ("gapwatch.error_detail", b"\xff\xfe bad utf-8"),
        ("gapwatch.source_topic", "as str"),
    ]
    r = parse_record(0, 1, None, None, garbled)
    assert (r.reason, r.source_partition, r.source_offset, r.batch_index) == (None,) * 4
    assert (r.failed_at_ms, r.failed_at, r.key, r.trust, r.payload) == (None, None, None, None, b"")
    assert r.detail == "\ufffd\ufffd bad utf-8"
    assert r.source == "as str:?:?"
    assert parse_record(0, 1, None, b"", None).detail == ""


def test_headers_given_as_a_mapping_are_accepted_too() -> None:
    assert parse_record(0, 0, None, b"", dict(HEADERS)) == parse_record(0, 0, None, b"", HEADERS)


def test_as_dict_lists_every_field_for_json_output() -> None:
    row = parse_record(3, 99, b"R0A", b"12345", HEADERS).as_dict("t.dlq")
    assert row == {
        "dlq_topic": "t.dlq",
        "dlq_partition": 3,
        "dlq_offset": 99,
        "reason": "too_late",
        "detail": "occurred_at 1 is older than the retention horizon",
        "source_topic": "gapwatch.encounters.v1",
        "source_partition": 7,
        "source_offset": 12345,
        "batch_index": 41,
        "trust": "R0A",
        "service": "gapwatch-ingest",
        "failed_at_ms": NOW_MS,
        "failed_at": "2026-11-27T11:46:40.000Z",
        "payload_bytes": 5,
    }


@pytest.mark.parametrize(
    ("text", "pairs"),
    [
        ("0:12", {(0, 12)}),
        ("0:12,3:4", {(0, 12), (3, 4)}),
        (" 1:2 , 1:2", {(1, 2)}),
    ],
)
def test_offsets_are_partition_colon_offset_pairs(text: str, pairs: set[tuple[int, int]]) -> None:
    assert parse_offsets(text) == pairs


@pytest.mark.parametrize("text", ["", "0", "0:", ":1", "a:1", "1:-2", "1:2,", "1:2:3"])
def test_malformed_offsets_are_refused(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="PARTITION:OFFSET"):
        parse_offsets(text)


LETTERS = [
    record(1, 5, "too_late"),
    record(0, 9, "undecodable"),
    record(0, 2, "too_late"),
    record(1, 0, None),
    record(2, 3, "invalid_field"),
]


def positions(records: list[DeadLetterRecord]) -> list[tuple[int, int]]:
    return [(r.partition, r.offset) for r in records]


def test_selection_without_filters_is_everything_in_partition_offset_order() -> None:
    assert positions(select(LETTERS)) == [(0, 2), (0, 9), (1, 0), (1, 5), (2, 3)]
    assert positions(select(LETTERS, reasons=[])) == positions(select(LETTERS))


def test_selection_by_reason_offsets_and_start_offset_combines_all_filters() -> None:
    assert positions(select(LETTERS, reasons=["too_late"])) == [(0, 2), (1, 5)]
    assert positions(select(LETTERS, reasons={"too_late", "invalid_field"})) == [
        (0, 2),
        (1, 5),
        (2, 3),
    ]
    assert positions(select(LETTERS, positions={(1, 0), (2, 3), (4, 4)})) == [(1, 0), (2, 3)]
    assert positions(select(LETTERS, since_offset=3)) == [(0, 9), (1, 5), (2, 3)]
    assert positions(select(LETTERS, reasons=["too_late"], since_offset=3)) == [(1, 5)]
    assert select(LETTERS, positions=set()) == []
    assert select(LETTERS, reasons=["dataset_mismatch"]) == []


def test_counts_per_reason_put_the_most_frequent_first() -> None:
    counts = count_by_reason(LETTERS)
    assert list(counts.items()) == [
        ("too_late", 2),
        ("-", 1),
        ("invalid_field", 1),
        ("undecodable", 1),
    ]
    assert format_summary(counts).splitlines() == [
        "too_late                    2",
        "-                           1",
        "invalid_field               1",
        "undecodable                 1",
        "total                       5",
    ]


def test_the_table_has_one_aligned_line_per_letter_with_details_cut() -> None:
    letters = [
        record(0, 7, "too_late", batch_index=12, detail="line one\nline two"),
        record(11, 123456, "undecodable", key=None, failed_at_ms=None, detail="y" * 200),
    ]
    lines = format_table(letters, detail_width=20).splitlines()
    assert len(lines) == 3
    head, first, second = lines
    assert head.split() == [
        "part", "offset", "reason", "source", "topic:partition:offset", "batch", "trust",
        "failed", "at", "(UTC)", "detail",
    ]  # fmt: skip
    assert first.split() == [
        "0", "7", "too_late", "gapwatch.encounters.v1:1:2", "12", "R0A",
        "2026-11-27T11:46:40.000Z", "line", "one", "line", "two",
    ]  # fmt: skip
    assert second.split() == [
        "11", "123456", "undecodable", "gapwatch.encounters.v1:1:2", "-", "-", "-",
        "y" * 19 + "…",
    ]  # fmt: skip
    # Columns line up: each column starts at the same place on every line.
    for word in ("reason", "trust", "detail"):
        column = head.index(word)
        assert first[column - 1] == " " and second[column - 1] == " "
        assert first[column] != " " and second[column] != " "


def test_a_partition_ends_at_its_eof() -> None:
    progress = ReadProgress([0, 1])
    progress.reached_eof(1)
    assert progress.unfinished == [0]
    progress.reached_eof(0)
    assert progress.unfinished == []


def test_a_partition_ends_when_the_next_offset_reaches_the_fetched_high_watermark() -> None:
    progress = ReadProgress([0, 1, 2])
    progress.saw_watermarks(0, -1001, -1001)  # no fetch response yet: unknown
    progress.saw_watermarks(1, 0, 0)  # empty
    progress.saw_watermarks(2, 10, 10)  # everything before 10 deleted: empty
    assert progress.unfinished == [0]
    progress.saw_watermarks(0, 0, 15)
    progress.consumed(0, 13)
    progress.saw_watermarks(0, 0, 15)
    assert progress.unfinished == [0]
    progress.consumed(0, 14)
    progress.saw_watermarks(0, 0, 15)
    assert progress.unfinished == []


def test_a_start_offset_past_the_end_ends_at_the_watermark_without_an_eof() -> None:
    # Tansu answers a fetch past the end with the watermark and no error, so no EOF comes.
    progress = ReadProgress([0, 1], start_offset=50)
    progress.saw_watermarks(0, 0, 15)
    assert progress.unfinished == [1]
    progress.saw_watermarks(1, 0, 51)
    assert progress.unfinished == [1]


def parse(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["dlq", *argv])


def test_the_command_line_defaults() -> None:
    listing = parse("list")
    assert (listing.reason, listing.since_offset, listing.limit, listing.json) == (
        None,
        None,
        None,
        False,
    )
    assert listing.timeout == 30.0
    again = parse("republish", "--reason", "too_late", "--reason", "invalid_field")
    assert again.reason == ["too_late", "invalid_field"] and again.offsets is None
    assert not again.dry_run and again.to is None
    assert parse("republish", "--offsets", "0:1,2:3", "--to", "x").offsets == {(0, 1), (2, 3)}


@pytest.mark.parametrize(
    "argv",
    [
        ["republish"],  # nothing chosen
        ["republish", "--reason", "too_late", "--offsets", "0:1"],
        ["republish", "--offsets", "zero"],
        ["list", "--json", "--summary"],
        ["list", "--limit", "0"],
        ["list", "--since-offset", "-1"],
        ["purge"],
    ],
)
def test_bad_arguments_exit_two(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        parse(*argv)
    assert exit_.value.code == 2
    assert "error:" in capsys.readouterr().err


# --- the commands, with the broker replaced ---------------------------------------------


class FakeMessage:
    def __init__(self, topic: str, offset: int) -> None:
        self._topic, self._offset = topic, offset

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return self._offset


class FakeProducer:
    """Acknowledges on flush; keys in ``fail`` get an error, keys in ``lose`` no report."""

    made: list[FakeProducer] = []
    fail: set[bytes] = set()
    lose: set[bytes] = set()

    def __init__(self, config: dict[str, object]) -> None:
        self.config = config
        self.sent: list[tuple[str, bytes, bytes | None, list[tuple[str, bytes]]]] = []
        self._reports: list[tuple[bytes | None, Callable[[KafkaError | None, Any], None]]] = []
        FakeProducer.made.append(self)

    def list_topics(self, topic: str, timeout: float) -> SimpleNamespace:
        return SimpleNamespace(topics={topic: SimpleNamespace(error=None, partitions={0: None})})

    def produce(
        self, topic: str, value: bytes, key: bytes | None, *, on_delivery: Any, headers: Any
    ) -> None:
        self.sent.append((topic, value, key, headers))
        self._reports.append((key, on_delivery))

    def poll(self, timeout: float) -> int:
        return 0

    def flush(self, timeout: float) -> int:
        for n, (key, report) in enumerate(self._reports):
            if key in self.lose:
                continue
            error = KafkaError(KafkaError._MSG_TIMED_OUT) if key in self.fail else None
            report(error, FakeMessage(self.sent[n][0], 100 + n))
        return 0


@pytest.fixture()
def broker_free(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """Serve ``read_dead_letters`` from a list and produce into ``FakeProducer``."""
    FakeProducer.made, FakeProducer.fail, FakeProducer.lose = [], set(), set()
    monkeypatch.setattr(dlq, "Producer", FakeProducer)
    monkeypatch.setenv("GAPWATCH_KAFKA_DLQ_TOPIC", "src.dlq")

    def serve(records: list[DeadLetterRecord], unfinished: list[int] | None = None) -> None:
        def read(bootstrap: str, topic: str, **kw: Any) -> ReadResult:
            assert topic == "src.dlq"
            return ReadResult(select(records, since_offset=kw["since_offset"]), unfinished or [])

        monkeypatch.setattr(dlq, "read_dead_letters", read)

    return serve


STORED = [
    record(0, 0, "too_late", key=b"R0A", payload=b"one"),
    record(0, 1, "undecodable", key=b"RRK", payload=b"two"),
    record(1, 0, "too_late", key=None, payload=b"three", source_topic="other.v1"),
]


def test_republish_sends_payload_and_key_unchanged_with_the_origin_header(
    broker_free: Callable[..., None], capsys: pytest.CaptureFixture[str]
) -> None:
    broker_free(STORED)
    assert main(["dlq", "republish", "--reason", "too_late"]) == 0
    (producer,) = FakeProducer.made
    assert producer.config["enable.idempotence"] is True and producer.config["acks"] == "all"
    assert producer.sent == [
        ("gapwatch.encounters.v1", b"one", b"R0A", [("gapwatch.republished_from", b"src.dlq:0:0")]),
        ("other.v1", b"three", None, [("gapwatch.republished_from", b"src.dlq:1:0")]),
    ]
    out = capsys.readouterr().out
    assert (
        "republished dlq 0:0 (too_late, trust R0A, 3 bytes) -> gapwatch.encounters.v1:0:100" in out
    )
    assert "2 of 2 letter(s) republished" in out


def test_a_failed_or_unreported_delivery_exits_one(
    broker_free: Callable[..., None], capsys: pytest.CaptureFixture[str]
) -> None:
    broker_free(STORED)
    FakeProducer.fail, FakeProducer.lose = {b"R0A"}, {b"RRK"}
    assert main(["dlq", "republish", "--offsets", "0:0,0:1,1:0", "--to", "fixed"]) == 1
    captured = capsys.readouterr()
    assert "FAILED dlq 0:0" in captured.err and "Message timed out" in captured.err
    assert "FAILED dlq 0:1" in captured.err and "no delivery report" in captured.err
    assert "1 of 3 letter(s) republished" in captured.out
    assert {topic for topic, *_ in FakeProducer.made[0].sent} == {"fixed"}


def test_republish_refuses_before_sending_anything(
    broker_free: Callable[..., None], capsys: pytest.CaptureFixture[str]
) -> None:
    broker_free([*STORED, record(2, 0, "too_late", source_topic=None)])
    assert main(["dlq", "republish", "--reason", "too_late"]) == 2
    assert "2:0 have no gapwatch.source_topic header: use --to" in capsys.readouterr().err
    assert main(["dlq", "republish", "--offsets", "0:0,5:5"]) == 1
    assert "no dead letter at 5:5" in capsys.readouterr().err
    assert main(["dlq", "republish", "--reason", "dataset_mismatch"]) == 1
    assert "reasons present: too_late=3, undecodable=1" in capsys.readouterr().err
    assert main(["dlq", "republish", "--reason", "too_late", "--dry-run"]) == 2  # still unrouted
    assert main(["dlq", "republish", "--reason", "too_late", "--dry-run", "--to", "x"]) == 0
    assert "dry run: 3 letter(s) matched, nothing sent" in capsys.readouterr().out
    assert FakeProducer.made == []


def test_an_unfinished_read_is_an_error_not_a_short_list(
    broker_free: Callable[..., None], capsys: pytest.CaptureFixture[str]
) -> None:
    broker_free(STORED, unfinished=[1])
    assert main(["dlq", "list"]) == 2
    assert main(["dlq", "republish", "--reason", "too_late"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "partitions [1] not read to the end" in captured.err
    assert FakeProducer.made == []


def test_list_outputs(broker_free: Callable[..., None], capsys: pytest.CaptureFixture[str]) -> None:
    broker_free(STORED)
    assert main(["dlq", "list", "--json", "--limit", "2", "--since-offset", "0"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["dlq_partition"], r["dlq_offset"], r["dlq_topic"]) for r in rows] == [
        (0, 0, "src.dlq"),
        (0, 1, "src.dlq"),
    ]
    assert main(["dlq", "list", "--summary", "--reason", "too_late"]) == 0
    assert capsys.readouterr().out.split() == ["too_late", "2", "total", "2"]
    assert main(["dlq", "list", "--limit", "1"]) == 0
    out = capsys.readouterr().out
    assert len(out.split("\n\n")[0].splitlines()) == 2  # header + one letter
    assert "showing the first 1 of 3 letters" in out
    assert main(["dlq", "list", "--since-offset", "2"]) == 1
