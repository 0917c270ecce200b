"""A minimal reader for R's XDR serialization format (version 2), enough to decode the
``expect_snapshot_value(style = "serialize")`` snapshots of NHSRplotthedots' integration
tests (tests/testthat/_snaps/integration_tests.md): base64 of ``serialize(x, NULL)``.

Why: those snapshots are the only place the R package's own outputs are published at full
double precision, and R is not available here. Only the node types a tibble of doubles,
logicals and strings uses are supported (R Internals, "Serialization Formats").
"""

from __future__ import annotations

import base64
import struct
from dataclasses import dataclass, field
from typing import Any

_NIL, _REF, _GLOBALENV, _EMPTYENV = 254, 255, 253, 242
_SYM, _LIST, _CHAR, _LGL, _INT, _REAL, _STR, _VEC = 1, 2, 9, 10, 13, 14, 16, 19
NA_INTEGER = -(2**31)


@dataclass
class RObject:
    """An R vector with its attributes (names, class, ...)."""

    value: Any
    attributes: dict[str, Any] = field(default_factory=dict)


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0
        self.refs: list[Any] = []

    def int32(self) -> int:
        (v,) = struct.unpack_from(">i", self.data, self.pos)
        self.pos += 4
        return int(v)

    def doubles(self, n: int) -> list[float]:
        vs = struct.unpack_from(f">{n}d", self.data, self.pos)
        self.pos += 8 * n
        return [float(v) for v in vs]

    def item(self) -> Any:
        flags = self.int32()
        kind, has_attr, has_tag = flags & 0xFF, flags & (1 << 9), flags & (1 << 10)
        if kind == _NIL:
            return None
        if kind == _REF:
            index = flags >> 8 or self.int32()
            return self.refs[index - 1]
        if kind == _SYM:
            name = self.item()
            self.refs.append(name)
            return name
        if kind == _CHAR:
            n = self.int32()
            if n == -1:
                return None
            s = self.data[self.pos : self.pos + n].decode("utf-8")
            self.pos += n
            return s
        if kind == _LIST:
            attrs = self.item() if has_attr else None
            tag = self.item() if has_tag else None
            car = self.item()
            cdr = self.item()
            del attrs
            return [(tag, car), *(cdr or [])]
        n = self.int32()
        value: Any
        if kind == _REAL:
            value = self.doubles(n)
        elif kind in (_LGL, _INT):
            value = [self.int32() for _ in range(n)]
        elif kind == _STR:
            value = [self.item() for _ in range(n)]
        elif kind == _VEC:
            value = [self.item() for _ in range(n)]
        else:
            raise ValueError(f"unsupported SEXP type {kind} at byte {self.pos - 8}")
        attributes = dict(self.item()) if has_attr else {}
        return RObject(value, attributes)


def unserialize_base64(text: str) -> Any:
    """Decode ``serialize()`` output given as (possibly wrapped and indented) base64."""
    data = base64.b64decode("".join(text.split()))
    if data[:2] != b"X\n":
        raise ValueError("not an XDR serialization")
    reader = _Reader(data[2:])
    if reader.int32() != 2:
        raise ValueError("only serialization format version 2 is supported")
    reader.int32(), reader.int32()  # R version that wrote it, minimal version to read it
    obj = reader.item()
    if reader.pos != len(reader.data):
        raise ValueError(f"{len(reader.data) - reader.pos} trailing bytes")
    return obj


def data_frame_columns(obj: RObject) -> dict[str, RObject]:
    """Columns of a serialized data.frame/tibble by name."""
    names = obj.attributes["names"].value
    return dict(zip(names, obj.value, strict=True))
