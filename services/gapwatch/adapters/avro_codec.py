"""Confluent-framed Avro: magic byte 0, 4-byte big-endian schema id, Avro binary body.

Schema ids come from ``schemas/registry.json`` (id -> .avsc file). Each schema is parsed
once. Decoding uses a copy of the writer schema with logical types removed: the bytes
are identical, and reading ``occurred_at`` as a plain int (epoch ms, the core's time
unit) avoids building a datetime per event.

Decoding was half of the ingest worker's CPU with ``fastavro.schemaless_reader``: its
compiled reader still makes a Python call on the stream for every byte of every varint
and dispatches on the schema's type names for every field. So each schema is also
compiled once into straight-line Python that reads the bytes by index (``_compile``),
which is about twice as fast. It handles the canonical encoding that every writer
produces; anything else (a truncated or corrupt body, a non-canonical union index, an
array block with a byte size) makes it give up and fastavro decodes the message as
before, so what is accepted, what is rejected and why are fastavro's alone.
"""

from __future__ import annotations

import io
import json
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fastavro

from gapwatch.core.errors import ConfigError, DecodeError

__all__ = ["EVENT_SCHEMA", "BATCH_SCHEMA", "AvroCodec", "Decoded"]

EVENT_SCHEMA = "gapwatch.events.EncounterEvent"
BATCH_SCHEMA = "gapwatch.events.EncounterBatch"
_HEADER = struct.Struct(">bI")

_Reader = Callable[[bytes, int], tuple[Any, int]]
"""(message, position of the Avro body) -> (record, position after it)."""


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
        self._fast: dict[int, _Reader] = {}
        self._ids: dict[str, int] = {}
        raw = {int(k): json.loads((schemas_dir / v).read_text()) for k, v in registry.items()}
        read_named: dict[str, Any] = {}
        fast_named: dict[str, Any] = {}
        # Ids in ascending order so referenced records (the event) parse before users.
        for schema_id in sorted(raw):
            doc = raw[schema_id]
            name = f"{doc['namespace']}.{doc['name']}"
            self._write[name] = fastavro.parse_schema(doc, named_schemas=named)
            reader = fastavro.parse_schema(_strip_logical(doc), named_schemas=read_named)
            self._read[schema_id] = (name, reader)
            self._ids[name] = schema_id
            try:
                self._fast[schema_id] = _compile(_strip_logical(doc), fast_named)
            except _Unsupported:
                pass  # a type the compiler leaves out: fastavro reads this schema

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

    def decode(self, payload: bytes, *, compiled: bool = True) -> Decoded:
        """Decode one message; raises DecodeError with reason ``undecodable`` or
        ``unknown_schema_id``. ``compiled=False`` decodes with fastavro alone: the
        reference the compiled readers must agree with."""
        if payload is None or len(payload) < 5:
            raise DecodeError("undecodable", "message shorter than the 5-byte Confluent header")
        magic, schema_id = _HEADER.unpack_from(payload)
        if magic != 0:
            raise DecodeError("undecodable", f"magic byte is {magic}, expected 0")
        entry = self._read.get(schema_id)
        if entry is None:
            raise DecodeError("unknown_schema_id", f"schema id {schema_id} is not registered")
        name, schema = entry
        record: Any = None
        fast = self._fast.get(schema_id) if compiled else None
        if fast is not None:
            try:
                record, end = fast(payload, 5)
                if end != len(payload):
                    record = None  # truncated or trailing bytes: fastavro says which
            except Exception:  # any malformed body: fastavro decides
                record = None
        if record is None:
            record = self._fastavro_decode(payload, schema)
        if name == BATCH_SCHEMA:
            return Decoded(name, record["events"])
        return Decoded(name, [record])

    @staticmethod
    def _fastavro_decode(payload: bytes, schema: Any) -> Any:
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
        return record


# ------------------------------------------------------------------ compiled readers
class _Unsupported(Exception):
    """A schema construct the compiler does not handle (fastavro reads that schema)."""


class _GiveUp(Exception):
    """Input outside the canonical encoding the compiled code handles."""


class _Compiler:
    """Emits one function that reads a record schema with locals and byte indexing.

    Every value is read into a fresh local; records are inlined (no call per nested
    record) and built as one dict display, in field order as fastavro builds them.
    """

    def __init__(self, named: dict[str, Any]) -> None:
        self.named = named
        self.lines: list[str] = []
        self.consts: dict[str, Any] = {"_GiveUp": _GiveUp}
        self._n = 0
        self._open: set[str] = set()
        self._namespace = ""

    def fresh(self, stem: str) -> str:
        self._n += 1
        return f"{stem}{self._n}"

    def emit(self, depth: int, line: str) -> None:
        self.lines.append("    " * depth + line)

    def varint(self, depth: int, var: str) -> None:
        """``var`` = the zig-zag encoded value of the next varint (unsigned).

        Inline, as the multi-byte case is common (every timestamp, any string over 63
        bytes). Beyond 9 bytes (63 bits) is left to fastavro's 64-bit arithmetic."""
        self.emit(depth, f"{var} = b[pos]")
        self.emit(depth, "pos += 1")
        self.emit(depth, f"if {var} > 0x7F:")
        self.emit(depth + 1, f"{var} &= 0x7F")
        self.emit(depth + 1, "shift = 7")
        self.emit(depth + 1, "while True:")
        self.emit(depth + 2, "byte = b[pos]")
        self.emit(depth + 2, "pos += 1")
        self.emit(depth + 2, f"{var} |= (byte & 0x7F) << shift")
        self.emit(depth + 2, "if byte < 0x80:")
        self.emit(depth + 3, "break")
        self.emit(depth + 2, "shift += 7")
        self.emit(depth + 2, "if shift > 56:")
        self.emit(depth + 3, "raise _GiveUp")

    def value(self, schema: Any, depth: int, var: str) -> None:
        """Emit code that reads one value of ``schema`` into local ``var``."""
        if isinstance(schema, list):
            self.union(schema, depth, var)
            return
        kind = schema["type"] if isinstance(schema, dict) else schema
        if isinstance(kind, dict | list):  # {"type": {...}} wrapping a type
            self.value(kind, depth, var)
        elif kind == "null":
            self.emit(depth, f"{var} = None")
        elif kind == "boolean":
            self.emit(depth, f"{var} = b[pos] != 0")
            self.emit(depth, "pos += 1")
        elif kind in ("int", "long"):
            self.varint(depth, var)
            self.emit(depth, f"{var} = ({var} >> 1) ^ -({var} & 1)")
        elif kind in ("string", "bytes"):
            self.varint(depth, var)
            self.emit(depth, f"if {var} & 1:")  # a negative length
            self.emit(depth + 1, "raise _GiveUp")
            self.emit(depth, f"{var} = pos + ({var} >> 1)")
            if kind == "string":
                self.emit(depth, f"{var}, pos = b[pos:{var}].decode(), {var}")
            else:  # bytes, as fastavro returns them even from a bytearray message
                self.emit(depth, f"{var}, pos = bytes(b[pos:{var}]), {var}")
        elif kind == "enum":
            self.define(schema)
            symbols = self.fresh("_symbols")
            self.consts[symbols] = tuple(schema["symbols"])
            self.varint(depth, var)
            # Python indexing, as fastavro's: a negative index counts from the end.
            self.emit(depth, f"{var} = {symbols}[({var} >> 1) ^ -({var} & 1)]")
        elif kind == "array":
            self.array(schema, depth, var)
        elif kind == "record":
            self.record(schema, depth, var)
        elif isinstance(kind, str) and self.full_name(kind) in self.named:
            full = self.full_name(kind)
            if full in self._open:
                raise _Unsupported(f"recursive type {full}")
            self._open.add(full)
            self.value(self.named[full], depth, var)
            self._open.discard(full)
        else:
            raise _Unsupported(f"type {kind!r}")

    def full_name(self, name: str) -> str:
        """A named type's full name: a name without a dot is in the enclosing namespace."""
        return name if "." in name or not self._namespace else f"{self._namespace}.{name}"

    def define(self, schema: dict[str, Any]) -> str:
        """Register a named type so later references (by name) read it too."""
        name: str = schema["name"]
        if "." not in name and "namespace" in schema:
            name = f"{schema['namespace']}.{name}" if schema["namespace"] else name
        else:
            name = self.full_name(name)
        self.named[name] = schema
        return name

    def union(self, branches: list[Any], depth: int, var: str) -> None:
        if len(branches) > 63:
            raise _Unsupported("union of more than 63 branches")
        index = self.fresh("u")
        self.emit(depth, f"{index} = b[pos]")
        self.emit(depth, "pos += 1")
        for i, branch in enumerate(branches):
            # A canonical branch index i is one byte, 2 * i (zig-zag).
            self.emit(depth, f"{'if' if i == 0 else 'elif'} {index} == {2 * i}:")
            self.value(branch, depth + 1, var)
        self.emit(depth, "else:")
        self.emit(depth + 1, "raise _GiveUp")

    def array(self, schema: dict[str, Any], depth: int, var: str) -> None:
        count, item, append = self.fresh("n"), self.fresh("item"), self.fresh("append")
        self.emit(depth, f"{var} = []")
        self.emit(depth, f"{append} = {var}.append")
        self.emit(depth, "while True:")
        self.varint(depth + 1, count)
        self.emit(depth + 1, f"if {count} == 0:")
        self.emit(depth + 2, "break")
        self.emit(depth + 1, f"if {count} & 1:")  # a negative count: a block size follows
        self.emit(depth + 2, "raise _GiveUp")
        self.emit(depth + 1, f"for _ in range({count} >> 1):")
        self.value(schema["items"], depth + 2, item)
        self.emit(depth + 2, f"{append}({item})")

    def record(self, schema: dict[str, Any], depth: int, var: str) -> None:
        full = self.define(schema)
        outer, self._namespace = self._namespace, full.rpartition(".")[0]
        fields = [(f["name"], self.fresh("f")) for f in schema["fields"]]
        for f, (_, local) in zip(schema["fields"], fields, strict=True):
            self.value(f["type"], depth, local)
        self._namespace = outer
        items = ", ".join(f"{key!r}: {local}" for key, local in fields)
        self.emit(depth, f"{var} = {{{items}}}")


def _compile(schema: dict[str, Any], named: dict[str, Any]) -> _Reader:
    """A reader for ``schema`` (a record); ``named`` collects named types across calls
    so later schemas can reference earlier ones by name."""
    compiler = _Compiler(named)
    compiler.emit(0, "def read(b, pos):")
    compiler.value(schema, 1, "v")
    compiler.emit(1, "return v, pos")
    source = "\n".join(compiler.lines)
    namespace = dict(compiler.consts)
    exec(compile(source, f"<avro reader {schema.get('name')}>", "exec"), namespace)  # noqa: S102
    reader: _Reader = namespace["read"]
    return reader
