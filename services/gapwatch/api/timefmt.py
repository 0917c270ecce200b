"""ISO-8601 <-> epoch ms at the HTTP edge (the core only sees epoch ms)."""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["iso", "parse_iso_ms"]


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat().replace("+00:00", "Z")


def parse_iso_ms(text: str) -> int:
    """Parse ISO-8601; a value without an offset (or a bare date) is read as UTC."""
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp() * 1000)
