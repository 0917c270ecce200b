"""`gapwatch dlq list` and `republish` against a real (Tansu) broker.

Letters are produced straight to a fresh dead-letter topic with the headers the ingest
worker writes, in several batches per partition (Tansu's ListOffsets(latest) is wrong
after the first batch, so a reader relying on it would stop early) and with one partition
left empty (its end is known only from an EOF or a fetch watermark).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition

from gapwatch.adapters.avro_codec import AvroCodec
from gapwatch.adapters.kafka_admin import ensure_topics
from gapwatch.cli import main
from gapwatch.devstack.services import free_port
from gapwatch.settings import KafkaSettings
from tests.conftest import NOW_MS

pytestmark = pytest.mark.integration

PARTITIONS = 3
FAILED_AT = NOW_MS + 5_000


@dataclass(frozen=True)
class Letter:
    partition: int
    key: bytes
    payload: bytes
    reason: str
    detail: str
    source_partition: int
    source_offset: int
    batch_index: int | None = None


@dataclass(frozen=True)
class Topics:
    bootstrap: str
    source: str
    dlq: str
    letters: dict[tuple[int, int], Letter]
    """(dlq partition, dlq offset) -> what was written there."""


def _letters(codec: AvroCodec, make_event: Callable[..., dict[str, Any]]) -> list[list[Letter]]:
    """Batches of letters, each batch flushed on its own."""
    old = make_event(occurred_at=NOW_MS - 500 * 86_400_000)
    return [
        [
            Letter(0, b"R0A", b"\x00\x00\x00\x00\x09not avro", "unknown_schema_id",
                   "schema id 9 is not registered", 4, 17),
            Letter(0, b"R0A", codec.encode_event(old), "too_late",
                   "occurred_at 1752580000000 is older than the retention horizon", 4, 18, 2),
        ],
        [Letter(0, b"RRK", b"{json?", "undecodable", "bad magic byte\nsecond line", 1, 3)],
        [
            Letter(1, b"RRK", codec.encode_event(make_event(provider_code="RRK", occurred_at=1)),
                   "too_late", "x" * 300, 2, 40),
            Letter(1, b"R0A", codec.encode_event(make_event(occurred_at=NOW_MS * 2)),
                   "future_timestamp", "occurred_at is in the future", 4, 19, 0),
        ],
    ]  # fmt: skip


def _headers(letter: Letter, source: str) -> list[tuple[str, bytes]]:
    headers = [
        ("gapwatch.reason", letter.reason.encode()),
        ("gapwatch.error_detail", letter.detail.encode()),
        ("gapwatch.source_topic", source.encode()),
        ("gapwatch.source_partition", str(letter.source_partition).encode()),
        ("gapwatch.source_offset", str(letter.source_offset).encode()),
        ("gapwatch.service", b"gapwatch-ingest"),
        ("gapwatch.failed_at_ms", str(FAILED_AT).encode()),
    ]
    if letter.batch_index is not None:
        headers.append(("gapwatch.batch_index", str(letter.batch_index).encode()))
    return headers


@pytest.fixture()
def topics(
    broker: str,
    codec: AvroCodec,
    make_event: Callable[..., dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> Topics:
    source = f"t-{uuid.uuid4().hex[:8]}.encounters"
    kafka = KafkaSettings(
        bootstrap=broker,
        topic=source,
        dlq_topic=f"{source}.dlq",
        alerts_topic=f"{source}.alerts",
        partitions=PARTITIONS,
    )
    created = ensure_topics(kafka)
    assert sorted(created) == sorted([kafka.topic, kafka.dlq_topic, kafka.alerts_topic])
    producer = Producer({"bootstrap.servers": broker, "linger.ms": 20})
    written: dict[tuple[int, int], Letter] = {}

    def on_delivery(err: KafkaError | None, msg: Message, letter: Letter) -> None:
        assert err is None, err
        written[(msg.partition(), msg.offset())] = letter

    for batch in _letters(codec, make_event):
        for letter in batch:
            producer.produce(
                kafka.dlq_topic,
                letter.payload,
                letter.key,
                partition=letter.partition,
                headers=_headers(letter, source),
                on_delivery=lambda err, msg, letter=letter: on_delivery(err, msg, letter),
            )
        assert producer.flush(10) == 0
    assert sorted(written) == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1)]
    monkeypatch.setenv("GAPWATCH_KAFKA_BOOTSTRAP", broker)
    monkeypatch.setenv("GAPWATCH_KAFKA_TOPIC", source)
    monkeypatch.setenv("GAPWATCH_KAFKA_DLQ_TOPIC", kafka.dlq_topic)
    return Topics(broker, source, kafka.dlq_topic, written)


def _read_back(bootstrap: str, topic: str, partitions: int = PARTITIONS) -> list[Message]:
    """Everything in ``topic``, read to the EOF of every partition."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"check-{uuid.uuid4().hex[:8]}",
            "enable.partition.eof": True,
            "enable.auto.commit": False,
        }
    )
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    messages: list[Message] = []
    at_end: set[int] = set()
    deadline = time.monotonic() + 10
    while len(at_end) < partitions:
        assert time.monotonic() < deadline, (
            f"{topic}: no EOF from {set(range(partitions)) - at_end}"
        )
        msg = consumer.poll(0.2)
        if msg is None:
            continue
        error = msg.error()
        if error is None:
            messages.append(msg)
        elif error.code() == KafkaError._PARTITION_EOF:
            at_end.add(msg.partition())
        else:
            raise AssertionError(str(error))
    consumer.close()
    return messages


def _json(capsys: pytest.CaptureFixture[str], *argv: str) -> list[dict[str, Any]]:
    capsys.readouterr()
    assert main(["dlq", "list", "--json", "--timeout", "10", *argv]) == 0
    rows: list[dict[str, Any]] = json.loads(capsys.readouterr().out)
    return rows


def test_list_shows_every_letter_with_its_headers(
    topics: Topics, capsys: pytest.CaptureFixture[str]
) -> None:
    started = time.monotonic()
    rows = _json(capsys)
    assert time.monotonic() - started < 5  # ended at the partitions' ends, not the timeout
    assert [(r["dlq_partition"], r["dlq_offset"]) for r in rows] == sorted(topics.letters)
    for row in rows:
        letter = topics.letters[(row["dlq_partition"], row["dlq_offset"])]
        assert row == {
            "dlq_topic": topics.dlq,
            "dlq_partition": letter.partition,
            "dlq_offset": row["dlq_offset"],
            "reason": letter.reason,
            "detail": letter.detail,
            "source_topic": topics.source,
            "source_partition": letter.source_partition,
            "source_offset": letter.source_offset,
            "batch_index": letter.batch_index,
            "trust": letter.key.decode(),
            "service": "gapwatch-ingest",
            "failed_at_ms": FAILED_AT,
            "failed_at": "2026-11-27T11:46:45.000Z",
            "payload_bytes": len(letter.payload),
        }

    chosen = _json(capsys, "--reason", "too_late", "--reason", "undecodable")
    assert [(r["dlq_partition"], r["dlq_offset"]) for r in chosen] == [(0, 1), (0, 2), (1, 0)]
    assert [
        (r["dlq_partition"], r["dlq_offset"]) for r in _json(capsys, "--since-offset", "1")
    ] == [
        (0, 1),
        (0, 2),
        (1, 1),
    ]
    assert len(_json(capsys, "--limit", "2")) == 2

    assert main(["dlq", "list"]) == 0
    table = capsys.readouterr().out
    assert f"{topics.source}:4:18" in table and "2026-11-27T11:46:45.000Z" in table
    assert "bad magic byte second line" in table  # one line per letter
    assert "x" * 300 not in table  # long details are cut
    assert main(["dlq", "list", "--summary"]) == 0
    summary = capsys.readouterr().out.split()
    assert summary == ["too_late", "2", "future_timestamp", "1", "undecodable", "1"] + [
        "unknown_schema_id", "1", "total", "5",
    ]  # fmt: skip


def test_nothing_matched_exits_one(topics: Topics, capsys: pytest.CaptureFixture[str]) -> None:
    started = time.monotonic()
    # Past the end of every partition: Tansu sends no EOF there, the fetch watermark ends it.
    assert main(["dlq", "list", "--since-offset", "50", "--timeout", "10"]) == 1
    assert time.monotonic() - started < 5
    assert main(["dlq", "list", "--reason", "dataset_mismatch"]) == 1
    err = capsys.readouterr().err
    assert "no dead letters matched" in err and "too_late=2" in err


def test_republish_sends_the_unchanged_bytes_back_to_the_source_topic(
    topics: Topics, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["dlq", "republish", "--reason", "too_late", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "would republish dlq 0:1" in out and "would republish dlq 1:0" in out
    assert _read_back(topics.bootstrap, topics.source) == []  # a dry run sends nothing

    assert main(["dlq", "republish", "--reason", "too_late"]) == 0
    assert "2 of 2 letter(s) republished" in capsys.readouterr().out
    got = {
        (m.key(), m.value(), tuple(m.headers() or ()))
        for m in _read_back(topics.bootstrap, topics.source)
    }
    assert got == {
        (
            letter.key,
            letter.payload,
            (("gapwatch.republished_from", f"{topics.dlq}:{p}:{o}".encode()),),
        )
        for (p, o), letter in topics.letters.items()
        if letter.reason == "too_late"
    }


def test_republish_chosen_offsets_to_another_topic(
    topics: Topics, capsys: pytest.CaptureFixture[str]
) -> None:
    other = KafkaSettings(
        bootstrap=topics.bootstrap,
        topic=f"t-{uuid.uuid4().hex[:8]}.fixed",
        dlq_topic=f"t-{uuid.uuid4().hex[:8]}.unused",
        partitions=1,
    )
    ensure_topics(other)
    missing = f"t-{uuid.uuid4().hex[:8]}.typo"
    assert main(["dlq", "republish", "--offsets", "0:0", "--to", missing]) == 2
    assert f"topic {missing} is not available" in capsys.readouterr().err
    # One offset that does not exist: nothing at all is sent.
    assert main(["dlq", "republish", "--offsets", "0:0,2:7", "--to", other.topic]) == 1
    assert "no dead letter at 2:7" in capsys.readouterr().err
    assert _read_back(topics.bootstrap, other.topic, 1) == []

    assert main(["dlq", "republish", "--offsets", "0:0,1:1", "--to", other.topic]) == 0
    got = sorted((m.value(), m.key()) for m in _read_back(topics.bootstrap, other.topic, 1))
    assert got == sorted(
        (topics.letters[p].payload, topics.letters[p].key) for p in [(0, 0), (1, 1)]
    )
    assert _read_back(topics.bootstrap, topics.source) == []


def test_missing_topic_and_unreachable_broker_exit_two(
    topics: Topics, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GAPWATCH_KAFKA_DLQ_TOPIC", f"t-{uuid.uuid4().hex[:8]}.missing")
    assert main(["dlq", "list", "--timeout", "5"]) == 2
    assert "is not available" in capsys.readouterr().err

    monkeypatch.setenv("GAPWATCH_KAFKA_BOOTSTRAP", f"127.0.0.1:{free_port()}")
    assert main(["dlq", "republish", "--reason", "too_late", "--timeout", "1"]) == 2
    assert "broker unavailable" in capsys.readouterr().err
