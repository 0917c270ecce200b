"""The audit trail in Redis: an append-only stream, trimmed by age, and a log line per
entry.

Key ``gwaudit:{<namespace>}:log`` (a stream), outside the counts' ``gw:`` prefix so that
``gapwatch rebuild`` and a fresh local stack never touch it. Entries are buffered and
written in one pipeline every ``flush_interval_s`` (a cached answer costs well under a
millisecond; a Redis round trip per request would double that). The log line is written
at once, so a crash loses at most one interval of stream entries, never the log.
Nothing in gapwatch deletes entries except the retention trim (``MINID``) on append.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any, Final

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from gapwatch.core.audit import AuditEntry
from gapwatch.core.errors import TransientError

__all__ = ["AuditLog", "audit_key"]

logger = logging.getLogger("gapwatch.audit")
DAY_MS: Final = 86_400_000
_TRIM: Final = """
local now = redis.call('TIME')
local cutoff = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) - tonumber(ARGV[1])
if cutoff > 0 then redis.call('XTRIM', KEYS[1], 'MINID', cutoff) end
return cutoff
"""
"""Stream ids are Redis's own clock (auto ids stay ordered across API replicas whose
clocks differ), so the cutoff is taken from Redis's clock too."""
_MAX_BUFFER: Final = 100_000
"""Entries held while Redis is down; beyond this the oldest unwritten are dropped from
the stream (they are still in the log) and the drop is logged."""


class _AsJson:
    __slots__ = ("fields",)

    def __init__(self, fields: dict[str, str]) -> None:
        self.fields = fields

    def __str__(self) -> str:
        return json.dumps(self.fields, separators=(",", ":"))


def audit_key(namespace: str) -> str:
    return f"gwaudit:{{{namespace}}}:log"


class AuditLog:
    def __init__(self, client: aioredis.Redis, namespace: str, retention_ms: int) -> None:
        self.client = client
        self.key = audit_key(namespace)
        self.retention_ms = retention_ms
        self._trim = client.register_script(_TRIM)
        self._pending: list[dict[Any, Any]] = []
        """Entries as stream fields, in order, not yet written."""
        self.dropped = 0

    @classmethod
    def from_url(cls, url: str, namespace: str, retention_days: int) -> AuditLog:
        client = aioredis.Redis.from_url(url, socket_timeout=2.0, decode_responses=True)
        return cls(client, namespace, retention_days * DAY_MS)

    def record(self, entry: AuditEntry) -> None:
        """Log now; append to the stream at the next flush."""
        fields = entry.fields()
        # Formatted only when a handler takes it (logging's lazy %s).
        logger.info("audit %s", _AsJson(fields))
        self._pending.append(fields)
        if len(self._pending) > _MAX_BUFFER:
            drop = len(self._pending) - _MAX_BUFFER
            del self._pending[:drop]
            self.dropped += drop
            logger.error("audit stream unreachable: %d entries kept only in the log", drop)

    async def flush(self) -> int:
        """Write what is pending; entries stay pending if Redis does not answer."""
        if not self._pending:
            return 0
        batch, self._pending = self._pending, []
        try:
            async with self.client.pipeline(transaction=False) as pipe:
                for fields in batch:
                    pipe.xadd(self.key, fields)
                await pipe.execute()
            await self._trim(keys=[self.key], args=[self.retention_ms])
        except (RedisError, OSError) as exc:
            self._pending = batch + self._pending
            logger.warning("audit stream write failed, will retry: %s", exc)
            return 0
        return len(batch)

    async def run(self, interval_s: float, stop: asyncio.Event) -> None:
        """Flush every ``interval_s`` until ``stop`` is set, then once more."""
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), timeout=interval_s)
            except TimeoutError:
                pass
            await self.flush()
        await self.flush()

    async def read(
        self,
        *,
        limit: int,
        before: str | None = None,
        since_ms: int | None = None,
        subject: str | None = None,
        outcome: str | None = None,
    ) -> tuple[list[tuple[str, AuditEntry]], str | None]:
        """Newest first, up to ``limit`` matching entries, and the id to pass as ``before``
        for the next page (None when there is no more)."""
        found: list[tuple[str, AuditEntry]] = []
        if before is not None and before.split("-") in (["0", "0"], ["0"]):
            return found, None  # nothing is older than the first possible id
        end = "+" if before is None else f"({before}"
        start = "-" if since_ms is None else str(since_ms)
        try:
            while len(found) < limit:
                rows: list[tuple[str, dict[str, str]]] = await self.client.xrevrange(  # type: ignore[assignment]
                    self.key, max=end, min=start, count=500
                )
                if not rows:
                    return found, None
                for entry_id, data in rows:
                    entry = AuditEntry.from_fields(data)
                    if subject is not None and entry.subject != subject:
                        continue
                    if outcome is not None and entry.outcome != outcome:
                        continue
                    found.append((entry_id, entry))
                    if len(found) == limit:
                        return found, entry_id
                end = f"({rows[-1][0]}"
        except (RedisError, OSError) as exc:
            raise TransientError(f"redis unavailable: {exc}") from exc
        return found, None

    async def close(self) -> None:
        await self.client.aclose()
