"""Confluent-framed Avro: magic byte 0, 4-byte big-endian schema id, Avro binary body.

Schema ids come from ``schemas/registry.json`` (id -> .avsc file). Each schema is parsed
once. Decoding uses a copy of the writer schema with logical types removed: the bytes
are identical, and reading ``occurred_at`` as a plain int (epoch ms, the core's time
unit) avoids building a datetime per event.
"""

from __future__ import annotations

import io
import json
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fastavro

from gapwatch.core.errors import ConfigError, DecodeError

__all__ = ["EVENT_SCHEMA", "BATCH_SCHEMA", "AvroCodec", "Decoded"]

EVENT_SCHEMA = "gapwatch.events.EncounterEvent"
BATCH_SCHEMA = "gapwatch.events.EncounterBatch"
_HEADER = struct.Struct(">bI")


@dataclass(frozen=True, slots=True)
class Decoded:
    schema_name: str
    events: list[dict[str, Any]]
    """One event for an EncounterEvent message, all of them for an EncounterBatch."""


def _strip_logical(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _strip_logical(v) for k, v in node.items() if k != "logicalType"}
    if isinstance(node, list):
        return [_strip_logical(v) for v in node]
    return node


class AvroCodec:
    def __init__(self, schemas_dir: Path) -> None:
        registry_path = schemas_dir / "registry.json"
        try:
            registry: dict[str, str] = json.loads(registry_path.read_text())
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read schema registry {registry_path}: {exc}") from exc
        named: dict[str, Any] = {}
        self._write: dict[str, Any] = {}
        self._read: dict[int, tuple[str, Any]] = {}
        self._ids: dict[str, int] = {}
        raw = {int(k): json.loads((schemas_dir / v).read_text()) for k, v in registry.items()}
        read_named: dict[str, Any] = {}
        # Ids in ascending order so referenced records (the event) parse before users.
        for schema_id in sorted(raw):
            doc = raw[schema_id]
            name = f"{doc['namespace']}.{doc['name']}"
            self._write[name] = fastavro.parse_schema(doc, named_schemas=named)
            reader = fastavro.parse_schema(_strip_logical(doc), named_schemas=read_named)
            self._read[schema_id] = (name, reader)
            self._ids[name] = schema_id

    def schema_id(self, name: str) -> int:
        return self._ids[name]

    def encode(self, name: str, record: Mapping[str, Any]) -> bytes:
        buf = io.BytesIO()
        buf.write(_HEADER.pack(0, self._ids[name]))
        fastavro.schemaless_writer(buf, self._write[name], record)
        return buf.getvalue()

    def encode_event(self, event: Mapping[str, Any]) -> bytes:
        return self.encode(EVENT_SCHEMA, event)

    def encode_batch(self, events: list[Mapping[str, Any]], batch_id: str | None = None) -> bytes:
        return self.encode(BATCH_SCHEMA, {"batch_id": batch_id, "events": events})

    def decode(self, payload: bytes) -> Decoded:
        """Decode one message; raises DecodeError with reason ``undecodable`` or
        ``unknown_schema_id``."""
        if payload is None or len(payload) < 5:
            raise DecodeError("undecodable", "message shorter than the 5-byte Confluent header")
        magic, schema_id = _HEADER.unpack_from(payload)
        if magic != 0:
            raise DecodeError("undecodable", f"magic byte is {magic}, expected 0")
        entry = self._read.get(schema_id)
        if entry is None:
            raise DecodeError("unknown_schema_id", f"schema id {schema_id} is not registered")
        name, schema = entry
        stream = io.BytesIO(payload)
        stream.seek(5)
        try:
            record: Any = fastavro.schemaless_reader(stream, schema, None)
        except Exception as exc:  # fastavro raises many types for corrupt input
            raise DecodeError("undecodable", f"{type(exc).__name__}: {exc}"[:300]) from exc
        if stream.tell() != len(payload):
            raise DecodeError(
                "undecodable", f"{len(payload) - stream.tell()} trailing bytes after the record"
            )
        if name == BATCH_SCHEMA:
            return Decoded(name, record["events"])
        return Decoded(name, [record])
