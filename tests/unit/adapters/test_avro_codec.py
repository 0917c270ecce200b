import io
import json
import struct

import fastavro
import pytest

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
