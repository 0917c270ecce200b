"""``GET /v1/dead-letters`` reading a real (Tansu) dead-letter topic.

Letters of two trusts are produced to a fresh topic as the ingest worker writes them
(``FaustDeadLetters``: the source message's key, the payload untouched, ``gapwatch.*``
headers), several per batch and in several batches per partition: Tansu answers
ListOffsets(latest) with the newest batch's base offset + 1, so a tail read that trusted
it would miss letters (docs/tansu.md §4).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from confluent_kafka import KafkaError, Message, Producer
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]  # re-exported at runtime, not in the stubs
from fastapi.testclient import TestClient

from gapwatch.adapters.dead_letter_reader import DeadLetterReader
from gapwatch.api.app import create_app
from gapwatch.settings import Settings
from tests.api.conftest import NOW, NOW_S, MemoryStore
from tests.conftest import tiny_reference_data
from tests.tokens import bearer, token

pytestmark = pytest.mark.integration

PARTITIONS = 2
SOURCE = "gapwatch.encounters.v1"
POSTCODE = "M15 4AB"
"""In every payload: what a trust sent must never reach an answer."""


@dataclass(frozen=True)
class Letter:
    trust: str
    partition: int
    reason: str
    source_offset: int


BATCHES = [
    [
        Letter("R0A", 0, "too_late", 10),
        Letter("RRK", 0, "undecodable", 11),
        Letter("R0A", 0, "invalid_field", 12),
    ],
    [Letter("RRK", 1, "too_late", 20), Letter("RRK", 1, "future_timestamp", 21)],
    [
        Letter("R0A", 0, "too_late", 13),
        Letter("R0A", 0, "dataset_mismatch", 14),
        Letter("RRK", 0, "too_late", 15),
        Letter("R0A", 1, "undecodable", 22),
    ],
]
"""Each inner list is produced and flushed on its own (one batch per partition)."""


def _headers(letter: Letter, failed_at_ms: int) -> list[tuple[str, str | bytes | None]]:
    """What ``ingest.app.FaustDeadLetters`` writes."""
    return [
        ("gapwatch.reason", letter.reason.encode()),
        ("gapwatch.error_detail", f"{letter.reason} (offset {letter.source_offset})".encode()),
        ("gapwatch.source_topic", SOURCE.encode()),
        ("gapwatch.source_partition", b"3"),
        ("gapwatch.source_offset", str(letter.source_offset).encode()),
        ("gapwatch.service", b"gapwatch-ingest"),
        ("gapwatch.failed_at_ms", str(failed_at_ms).encode()),
    ]


@pytest.fixture()
def dlq(broker: str) -> Iterator[str]:
    """A fresh dead-letter topic holding BATCHES; deleted afterwards."""
    topic = f"t-{uuid.uuid4().hex[:8]}.dlq"
    admin = AdminClient({"bootstrap.servers": broker})
    for future in admin.create_topics([NewTopic(topic, PARTITIONS, 1)]).values():
        future.result(10)
    producer = Producer({"bootstrap.servers": broker, "linger.ms": 50, "acks": "all"})
    failures: list[KafkaError] = []

    def on_delivery(err: KafkaError | None, _: Message) -> None:
        if err is not None:
            failures.append(err)

    for n, batch in enumerate(BATCHES):
        for letter in batch:
            producer.produce(
                topic,
                f'{{"postcode": "{POSTCODE}", "provider_code": "{letter.trust}"}}'.encode(),
                letter.trust.encode(),  # the source message's key: the trust's code
                partition=letter.partition,
                headers=_headers(letter, NOW - 60_000 + n * 1_000),
                on_delivery=on_delivery,
            )
        assert producer.flush(10) == 0
    assert not failures, failures
    yield topic
    for future in admin.delete_topics([topic]).values():
        future.result(10)


def _client(broker: str, topic: str, role: str, per_partition: int = 200, **codes: Any) -> Any:
    reader = DeadLetterReader.kafka(broker, topic, per_partition=per_partition, timeout_s=10.0)
    app = create_app(
        Settings(auth={"rate_burst": 1000}),
        MemoryStore(),
        tiny_reference_data(),
        clock_ms=lambda: NOW,
        dead_letters=reader,
    )
    return TestClient(app, headers=bearer(token(role, now_s=NOW_S, **codes)))  # type: ignore[arg-type]


def _written(trust: str | None = None) -> list[Letter]:
    return [x for batch in BATCHES for x in batch if trust is None or x.trust == trust]


@pytest.mark.parametrize(("trust", "other"), [("R0A", "RRK"), ("RRK", "R0A")])
def test_a_trust_token_sees_only_its_own_letters_and_no_payload(
    broker: str, dlq: str, trust: str, other: str
) -> None:
    response = _client(broker, dlq, "trust", trusts=(trust,)).get("/v1/dead-letters")
    assert response.status_code == 200, response.text
    body = response.json()
    mine = _written(trust)
    assert {r["trust"] for r in body["letters"]} == {trust}
    assert sorted(r["source_offset"] for r in body["letters"]) == sorted(
        x.source_offset for x in mine
    )
    for row in body["letters"]:
        letter = next(x for x in mine if x.source_offset == row["source_offset"])
        assert row["reason"] == letter.reason
        assert row["partition"] == letter.partition
        assert row["detail"] == f"{letter.reason} (offset {letter.source_offset})"
        assert row["source_topic"] == SOURCE
        assert "payload" not in row
    failed = [r["failed_at"] for r in body["letters"]]
    assert failed == sorted(failed, reverse=True)  # newest first
    expected: dict[str, int] = {}
    for x in mine:
        expected[x.reason] = expected.get(x.reason, 0) + 1
    assert body["counts_by_reason"] == expected
    assert other not in response.text and POSTCODE not in response.text


def test_national_and_icb_tokens_see_what_their_scope_covers(broker: str, dlq: str) -> None:
    national = _client(broker, dlq, "national").get("/v1/dead-letters").json()
    assert national["matched"] == len(_written())
    icb = _client(broker, dlq, "icb", icbs=("QOP",)).get("/v1/dead-letters").json()
    assert {r["trust"] for r in icb["letters"]} == {"R0A"}
    assert icb["matched"] == len(_written("R0A"))
    refused = _client(broker, dlq, "trust", trusts=("R0A",)).get("/v1/dead-letters?trust=RRK")
    assert refused.status_code == 403
    assert "RRK" in refused.json()["detail"]


def test_only_the_newest_letters_of_each_partition_are_read(broker: str, dlq: str) -> None:
    body = _client(broker, dlq, "national", per_partition=2).get("/v1/dead-letters").json()
    newest = {
        p: sorted(x.source_offset for x in _written() if x.partition == p)[-2:]
        for p in range(PARTITIONS)
    }
    got = {
        p: sorted(r["source_offset"] for r in body["letters"] if r["partition"] == p)
        for p in range(PARTITIONS)
    }
    assert got == newest
    assert body["read_per_partition"] == 2


def test_a_missing_topic_is_a_503_that_says_so(broker: str) -> None:
    topic = f"t-{uuid.uuid4().hex[:8]}.missing"
    response = _client(broker, topic, "national").get("/v1/dead-letters")
    assert response.status_code == 503
    assert f"dead-letter topic {topic} is not available" in response.json()["detail"]
