from hypothesis import example, given
from hypothesis import strategies as st

from gapwatch.core.errors import DecodeError
from gapwatch.core.identifiers import redact
from gapwatch.core.validation import Limits
from gapwatch.ingest.dedup import SeenIds
from gapwatch.ingest.processor import DETAIL_MAX_CHARS, ChunkProcessor, InMessage, header_detail
from tests.conftest import NOW_MS

LIMITS = Limits(retention_ms=400 * 86_400_000, future_skew_ms=900_000)


def _processor(codec, ref):
    return ChunkProcessor(codec, ref, LIMITS, 8 * 86_400_000, SeenIds(8 * 86_400_000))


def test_every_event_is_counted_or_dead_lettered(codec, tiny_ref, make_event):
    good = [make_event(lsoa_code="E01000101") for _ in range(4)]
    bad = make_event(event_id="nope")
    messages = [
        InMessage(0, 10, NOW_MS - 5, codec.encode_batch([*good[:2], bad, good[2]])),
        InMessage(0, 11, NOW_MS - 5, codec.encode_event(good[3])),
        InMessage(1, 7, None, b"\x00\x00\x00\x00\x09xx", b"RRK"),
        InMessage(1, 8, None, codec.encode_event(make_event(event_id="also bad"))),
    ]
    result = _processor(codec, tiny_ref).process(messages, NOW_MS)
    p0, p1 = result.partitions[0], result.partitions[1]
    assert (p0.first_offset, p0.last_offset, p0.messages) == (10, 11, 2)
    assert (p0.consumed, p0.counted, p0.dead_lettered) == (5, 4, 1)
    assert (p1.consumed, p1.counted, p1.dead_lettered) == (2, 0, 2)
    reasons = sorted((d.reason, d.partition, d.offset, d.batch_index) for d in result.dead_letters)
    assert [d.key for d in result.dead_letters if d.offset == 7] == [b"RRK"]
    assert reasons == [
        ("invalid_field", 0, 10, 2),
        ("invalid_field", 1, 8, None),
        ("unknown_schema_id", 1, 7, None),
    ]
    day_fields = [f for key, f in result.deltas.items() if key[0] == "d"][0]
    assert day_fields["ed_arrival|imd_decile|1"] == 4


def test_a_bad_event_inside_a_batch_is_dead_lettered_alone(codec, tiny_ref, make_event):
    bad = make_event(event_id="nope")
    msg = InMessage(0, 1, None, codec.encode_batch([make_event(), bad]))
    letter = _processor(codec, tiny_ref).process([msg], NOW_MS).dead_letters[0]
    assert codec.decode(letter.payload).events == [bad]
    single = InMessage(0, 2, None, codec.encode_event(bad))
    letter = _processor(codec, tiny_ref).process([single], NOW_MS).dead_letters[0]
    assert letter.payload == single.value  # original bytes untouched


def test_bad_demographics_count_and_record_quality_reasons(codec, tiny_ref, make_event):
    event = make_event(sex="Q", ethnic_category=None, lsoa_code="E09999999")
    result = _processor(codec, tiny_ref).process(
        [InMessage(0, 0, None, codec.encode_event(event))], NOW_MS
    )
    assert result.counted == 1
    assert result.quality == {"sex_invalid": 1, "ethnicity_missing": 1, "lsoa_unknown_code": 1}
    day = [f for key, f in result.deltas.items() if key[0] == "d"][0]
    assert day["ed_arrival|imd_decile|unknown"] == 1
    assert day["ed_arrival|sex|unknown"] == 1


def test_freshness_tracks_the_newest_event_per_provider(codec, tiny_ref, make_event):
    events = [
        make_event(occurred_at=NOW_MS - 9000),
        make_event(occurred_at=NOW_MS - 1000),
        make_event(provider_code="RRK", occurred_at=NOW_MS - 5000),
    ]
    result = _processor(codec, tiny_ref).process(
        [InMessage(0, 0, None, codec.encode_batch(events))], NOW_MS
    )
    assert result.freshness == {"R0A": (NOW_MS - 1000, 2), "RRK": (NOW_MS - 5000, 1)}


NHS = "9434765919"


def test_identifiers_in_the_wrong_field_are_dead_lettered_and_never_counted(
    codec, tiny_ref, make_event
):
    good = make_event(lsoa_code=None, postcode="m15 4ab")  # resolved to E01000103
    bad = [
        make_event(person_key=NHS),
        make_event(site_code="943 476 5919"),
        make_event(lsoa_code="M15 4AB"),
    ]
    batch = InMessage(0, 1, None, codec.encode_batch([good, *bad]), b"R0A")
    single = InMessage(0, 2, None, codec.encode_event(bad[0]), b"R0A")
    result = _processor(codec, tiny_ref).process([batch, single], NOW_MS)
    assert result.counted == 1
    letters = result.dead_letters
    assert [(d.reason, d.batch_index) for d in letters] == [
        ("identifier_in_field", 1),
        ("identifier_in_field", 2),
        ("identifier_in_field", 3),
        ("identifier_in_field", None),
    ]
    assert [d.detail for d in letters] == [
        "nhs_number in person_key",
        "nhs_number in site_code",
        "postcode in lsoa_code",
        "nhs_number in person_key",
    ]
    # The payload stays what the trust sent, so a fixed feed can be re-published.
    assert codec.decode(letters[0].payload).events == [bad[0]]
    assert letters[3].payload == single.value
    # The postcode was resolved to its LSOA and is nowhere in what will be stored.
    lsoa = [f for key, f in result.deltas.items() if key[0] == "l" and key[2] == "QOP"][0]
    assert lsoa == {"ed_arrival|lsoa|E01000103": 1}
    stored = repr((result.deltas, result.freshness, result.seen)).upper().replace(" ", "")
    assert "M154AB" not in stored and NHS not in stored


class _CodecQuotingPayload:
    """A decoder whose error text quotes the message, as some exceptions do."""

    def decode(self, payload):
        raise DecodeError("undecodable", f"ValueError: {payload!r} and {payload.decode()!r}")


def test_an_undecodable_message_detail_carries_none_of_its_bytes(tiny_ref):
    payload = f"patient {NHS} lives at M15 4AB and is called Jane Doe".encode()
    processor = ChunkProcessor(
        _CodecQuotingPayload(), tiny_ref, LIMITS, 8 * 86_400_000, SeenIds(8 * 86_400_000)
    )
    letter = processor.process([InMessage(0, 0, None, payload)], NOW_MS).dead_letters[0]
    assert letter.payload == payload
    assert letter.detail == "ValueError: <bytes> and <bytes>"


@given(st.text(max_size=2000))
@example(f"event_id is not a UUID: 'x{NHS}' nor 'M15 4AB'")
@example("9" * 498 + f" {NHS}")
def test_header_details_are_short_ascii_and_hold_no_identifier(text):
    detail = header_detail(text)
    assert detail.isascii()
    assert len(detail) <= DETAIL_MAX_CHARS
    assert redact(detail) == detail
    assert NHS not in detail
