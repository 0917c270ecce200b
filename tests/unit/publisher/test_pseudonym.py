"""The trust-side pseudonym: a keyed HMAC of the normalised NHS number, and a producer
that never lets an NHS number (or a misplaced postcode) onto the wire."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from typing import Any

import pytest

from gapwatch.adapters.avro_codec import AvroCodec
from gapwatch.core.errors import ConfigError
from gapwatch.publisher import (
    EncounterProducer,
    InvalidNhsNumber,
    ProducerOptions,
    Pseudonymiser,
    RefusedEvent,
)
from gapwatch.settings import KafkaSettings

KEY = bytes(range(32))
NHS = "9434765919"


def test_the_key_is_the_hex_hmac_sha256_of_the_ten_digits() -> None:
    expected = hmac.new(KEY, b"9434765919", hashlib.sha256).hexdigest()
    assert Pseudonymiser(KEY).person_key(NHS) == expected
    assert len(expected) == 64


def test_the_same_number_and_key_always_give_the_same_pseudonym() -> None:
    assert Pseudonymiser(KEY).person_key(NHS) == Pseudonymiser(bytes(KEY)).person_key(NHS)


def test_another_trusts_key_gives_another_pseudonym() -> None:
    other = Pseudonymiser(b"another trust's secret key, 32+ bytes long")
    assert other.person_key(NHS) != Pseudonymiser(KEY).person_key(NHS)


@pytest.mark.parametrize(
    "written", ["943 476 5919", "943-476-5919", " 9434765919\n", "943476 5919"]
)
def test_spaced_and_hyphenated_forms_give_the_same_pseudonym(written: str) -> None:
    assert Pseudonymiser(KEY).person_key(written) == Pseudonymiser(KEY).person_key(NHS)


@pytest.mark.parametrize(
    ("bad", "why"),
    [
        ("9434765918", "check digit"),
        ("943476591", "10 digits, not 9"),
        ("94347659190", "10 digits, not 11"),
        ("943 476 591O", "only digits"),
        (" ", "empty"),
    ],
)
def test_malformed_numbers_are_refused_without_being_echoed(bad: str, why: str) -> None:
    with pytest.raises(InvalidNhsNumber, match=why) as caught:
        Pseudonymiser(KEY).person_key(bad)
    message = str(caught.value)
    assert bad.strip() == "" or bad.replace(" ", "")[:6] not in message.replace(" ", "")


def test_keys_shorter_than_32_bytes_are_refused() -> None:
    with pytest.raises(ValueError, match="at least 32 bytes"):
        Pseudonymiser(b"x" * 31)


def test_the_key_never_shows_in_a_repr() -> None:
    assert KEY.hex() not in repr(Pseudonymiser(KEY)) and str(KEY) not in repr(Pseudonymiser(KEY))


class FakeKafka:
    """Records what would have been produced (``KafkaProducerLike``)."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def produce(
        self,
        topic: str,
        value: bytes,
        key: bytes,
        *,
        on_delivery: Callable[[Any, Any], None],
        headers: dict[str, str | bytes | None],
    ) -> None:
        self.sent.append(value)
        on_delivery(None, None)

    def poll(self, timeout: float) -> int:
        return 0

    def flush(self, timeout: float) -> int:
        return 0


def _producer(
    codec: AvroCodec, pseudonymiser: Pseudonymiser | None
) -> tuple[EncounterProducer, FakeKafka]:
    fake = FakeKafka()
    producer = EncounterProducer(
        KafkaSettings(),
        codec,
        ProducerOptions(events_per_message=2),
        producer=fake,
        pseudonymiser=pseudonymiser,
    )
    return producer, fake


def _decoded(codec: AvroCodec, fake: FakeKafka) -> list[dict[str, Any]]:
    return [event for value in fake.sent for event in codec.decode(value).events]


def test_the_producer_sends_the_pseudonym_and_never_the_nhs_number(
    codec: AvroCodec, make_event: Callable[..., dict[str, Any]]
) -> None:
    producer, fake = _producer(codec, Pseudonymiser(KEY))
    given = make_event(person_key=None, nhs_number="943 476 5919")
    del given["person_key"]
    producer.send_many([given, make_event(nhs_number="4010232137", person_key="")])
    producer.flush()
    events = _decoded(codec, fake)
    assert [e["person_key"] for e in events] == [
        Pseudonymiser(KEY).person_key(NHS),
        Pseudonymiser(KEY).person_key("4010232137"),
    ]
    assert all("nhs_number" not in e for e in events)
    assert not any(NHS.encode() in value or b"4010232137" in value for value in fake.sent)
    assert given["nhs_number"] == "943 476 5919"  # the caller's event is left alone


@pytest.mark.parametrize(
    ("changes", "error", "match"),
    [
        ({"nhs_number": NHS}, ConfigError, "no pseudonymiser"),
        ({"person_key": NHS}, RefusedEvent, "nhs_number in person_key"),
        ({"site_code": "M15 4AB"}, RefusedEvent, "postcode in site_code"),
    ],
)
def test_without_a_pseudonymiser_identifiers_are_refused_and_never_sent(
    codec: AvroCodec,
    make_event: Callable[..., dict[str, Any]],
    changes: dict[str, Any],
    error: type[Exception],
    match: str,
) -> None:
    producer, fake = _producer(codec, None)
    with pytest.raises(error, match=match) as caught:
        producer.send(make_event(**changes))
    assert NHS not in str(caught.value) and "M15" not in str(caught.value)
    producer.flush()
    assert fake.sent == [] and producer.stats.events_sent == 0


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"nhs_number": NHS, "person_key": "ab" * 32}, RefusedEvent),
        ({"nhs_number": "9434765918", "person_key": None}, InvalidNhsNumber),
    ],
)
def test_ambiguous_or_malformed_numbers_are_refused_too(
    codec: AvroCodec,
    make_event: Callable[..., dict[str, Any]],
    changes: dict[str, Any],
    error: type[Exception],
) -> None:
    producer, fake = _producer(codec, Pseudonymiser(KEY))
    with pytest.raises(error):
        producer.send(make_event(**changes))
    producer.flush()
    assert fake.sent == []


def test_a_null_nhs_number_is_just_dropped(
    codec: AvroCodec, make_event: Callable[..., dict[str, Any]]
) -> None:
    producer, fake = _producer(codec, None)
    producer.send(make_event(nhs_number=None))
    producer.flush()
    assert [e["person_key"] for e in _decoded(codec, fake)] == ["9f2c4e"]
