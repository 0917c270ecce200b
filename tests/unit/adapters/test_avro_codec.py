import io
import json
import random
import struct

import fastavro
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gapwatch.adapters.avro_codec import BATCH_SCHEMA, EVENT_SCHEMA, AvroCodec
from gapwatch.core.errors import ConfigError, DecodeError
from gapwatch.settings import repo_root

SCHEMAS = repo_root() / "schemas"


def test_registry_maps_string_ids_to_existing_schema_files():
    registry = json.loads((SCHEMAS / "registry.json").read_text())
    assert registry == {
        "1": "gapwatch.events.EncounterEvent.avsc",
        "2": "gapwatch.events.EncounterBatch.avsc",
    }
    for name in registry.values():
        assert (SCHEMAS / name).is_file()


def test_every_field_is_documented_and_optional_fields_have_defaults():
    required = {
        "event_id",
        "event_type",
        "occurred_at",
        "provider_code",
        "dataset",
        "person_key",
        "age_years",
        "sex",
        "ethnic_category",
        "lsoa_code",
        "postcode",
    }
    for path in SCHEMAS.glob("*.avsc"):
        doc = json.loads(path.read_text())
        assert doc["doc"] and doc["namespace"] == "gapwatch.events"
        for field in doc["fields"]:
            assert field.get("doc"), f"{path.name}:{field['name']} has no doc"
            if doc["name"] == "EncounterEvent" and field["name"] not in required:
                assert "default" in field, f"{field['name']} needs a default"
    event = json.loads((SCHEMAS / "gapwatch.events.EncounterEvent.avsc").read_text())
    names = {f["name"] for f in event["fields"]}
    assert (
        required
        | {"attendance_status", "admission_method", "minutes_in_department", "weeks_waiting"}
        <= names
    )


def test_events_and_batches_round_trip(codec, make_event):
    event = make_event(admission_method="21", event_type="admission", dataset="APC")
    decoded = codec.decode(codec.encode_event(event))
    assert decoded.schema_name == EVENT_SCHEMA
    assert decoded.events == [event]
    batch = [make_event() for _ in range(3)]
    decoded = codec.decode(codec.encode_batch(batch))
    assert decoded.schema_name == BATCH_SCHEMA
    assert decoded.events == batch


def test_occurred_at_decodes_as_epoch_milliseconds(codec, make_event):
    event = make_event(occurred_at=1_700_000_000_123)
    assert codec.decode(codec.encode_event(event)).events[0]["occurred_at"] == 1_700_000_000_123


def test_a_plain_fastavro_client_can_produce_valid_messages(codec, make_event):
    """schemas/ alone is enough: fastavro resolves the batch's reference by file name."""
    schema = fastavro.schema.load_schema(str(SCHEMAS / "gapwatch.events.EncounterBatch.avsc"))
    buf = io.BytesIO()
    buf.write(struct.pack(">bI", 0, 2))
    events = [make_event(), make_event()]
    fastavro.schemaless_writer(buf, schema, {"batch_id": None, "events": events})
    assert codec.decode(buf.getvalue()).events == events


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"", "undecodable"),
        (b"\x00\x00\x00", "undecodable"),
        (b"\x01\x00\x00\x00\x01abc", "undecodable"),
        (b"\x00\x00\x00\x00\x63abc", "unknown_schema_id"),
        (b"\x00\x00\x00\x00\x01\xff\xff\xff", "undecodable"),
        (b"garbage bytes!", "undecodable"),
    ],
)
def test_bad_bytes_raise_decode_error_with_a_reason(codec, payload, reason):
    with pytest.raises(DecodeError) as info:
        codec.decode(payload)
    assert info.value.reason == reason


def test_trailing_bytes_are_rejected(codec, make_event):
    with pytest.raises(DecodeError, match="trailing"):
        codec.decode(codec.encode_event(make_event()) + b"\x00")


def test_a_missing_registry_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError):
        AvroCodec(tmp_path)


# The compiled readers must decode exactly as fastavro does (``compiled=False``): the
# same records for every message, the same DecodeError for every malformed one.

_TEXT = st.text(max_size=80)  # any Unicode, long enough for two-byte lengths
_INT = st.integers(-(2**31), 2**31 - 1)
_EVENT = st.fixed_dictionaries(
    {
        "event_id": _TEXT,
        "event_type": st.sampled_from(
            [
                "ed_arrival",
                "ed_departure",
                "admission",
                "outpatient_appointment",
                "waiting_list_snapshot",
            ]
        ),
        "occurred_at": st.integers(-(2**63), 2**63 - 1),
        "provider_code": _TEXT,
        "dataset": st.sampled_from(["ECDS", "APC", "OPA", "WLMDS"]),
        "person_key": _TEXT,
        "age_years": st.none() | _INT,
        "sex": _TEXT,
        **{
            name: st.none() | _TEXT
            for name in (
                "ethnic_category",
                "lsoa_code",
                "lsoa_vintage",
                "postcode",
                "site_code",
                "attendance_status",
                "admission_method",
            )
        },
        "minutes_in_department": st.none() | _INT,
        "weeks_waiting": st.none() | _INT,
        "ed_department_type": st.none() | _TEXT,
    }
)


def _outcome(codec: AvroCodec, payload: bytes, *, compiled: bool) -> object:
    try:
        decoded = codec.decode(payload, compiled=compiled)
    except DecodeError as exc:
        return ("error", exc.reason, exc.detail)
    return (decoded.schema_name, decoded.events)


@settings(max_examples=200, deadline=None)
@given(st.lists(_EVENT, max_size=70), st.none() | _TEXT)
def test_compiled_reader_decodes_valid_messages_as_fastavro(events, batch_id):
    codec = AvroCodec(SCHEMAS)
    payloads = [codec.encode_batch(events, batch_id)]
    payloads += [codec.encode_event(e) for e in events[:3]]
    for payload in payloads:
        expected = _outcome(codec, payload, compiled=False)
        assert expected[0] != "error"
        assert _outcome(codec, payload, compiled=True) == expected


@settings(max_examples=500, deadline=None)
@given(st.lists(_EVENT, min_size=1, max_size=4), st.integers(0, 2**32 - 1), st.integers(0, 6))
def test_compiled_reader_rejects_or_accepts_mutated_messages_as_fastavro(events, seed, flips):
    codec = AvroCodec(SCHEMAS)
    rng = random.Random(seed)
    valid = codec.encode_batch(events) if seed % 2 else codec.encode_event(events[0])
    mutated = bytearray(valid)
    for _ in range(flips):
        mutated[rng.randrange(5, len(mutated))] = rng.choice([0, 1, 2, 3, 0x7F, 0x80, 0xFF])
    for payload in (
        bytes(mutated),
        valid[: rng.randrange(5, len(valid))],
        valid + bytes([rng.randrange(256)]),
        valid[:5] + bytes(rng.randrange(256) for _ in range(rng.randrange(40))),
    ):
        expected = _outcome(codec, payload, compiled=False)
        assert _outcome(codec, payload, compiled=True) == expected


def test_encodings_no_writer_here_produces_are_left_to_fastavro(codec, make_event):
    """Valid Avro the compiled reader does not handle: an array block with its byte
    size (negative count) and a non-canonical two-byte union index. (Longs beyond 63
    bits are in the property test above.)"""
    event = codec.encode_event(make_event())[5:]
    header = struct.pack(">bI", 0, 2)
    sized_block = header + b"\x00" + _long(-1) + _long(len(event)) + event + b"\x00"
    padded_union = header + b"\x80\x00" + b"\x00"  # batch_id null as 0x80 0x00, no events
    for payload in (sized_block, padded_union):
        assert _outcome(codec, payload, compiled=True) == _outcome(codec, payload, compiled=False)
    assert codec.decode(sized_block).events == [make_event() | _ids(codec, sized_block)]
    assert codec.decode(padded_union).events == []


def _long(n: int) -> bytes:
    """Avro's zig-zag varint."""
    z, out = (n << 1) ^ (n >> 63), bytearray()
    while z > 0x7F:
        out.append(z & 0x7F | 0x80)
        z >>= 7
    return bytes([*out, z])


def _ids(codec: AvroCodec, payload: bytes) -> dict[str, object]:
    """The event_id of the one event in ``payload`` (make_event draws a fresh uuid)."""
    return {"event_id": codec.decode(payload, compiled=False).events[0]["event_id"]}


def test_valid_messages_do_not_need_fastavro(codec, make_event, monkeypatch):
    """Both registered schemas have compiled readers: decoding never calls fastavro."""
    batch = codec.encode_batch([make_event(), make_event(age_years=None)])
    single = codec.encode_event(make_event(postcode="M15 4AB", lsoa_code=None))

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("fastavro was called")

    monkeypatch.setattr(fastavro, "schemaless_reader", refuse)
    assert len(codec.decode(batch).events) == 2
    assert codec.decode(single).events[0]["postcode"] == "M15 4AB"
