"""Redis: the key scheme, the atomic counts-plus-offsets write, and typed reads.

Every key starts ``gw:{<namespace>}:`` so on Redis Cluster all of a deployment's keys
share one hash slot and the apply script can touch them together.

Keys
  c:<h|d>:<bucket start ms>:<ICB>   hash  "<measure>|<breakdown>|<group>" -> count;
                                    ICB "ENG" holds England's sums
  versions                          hash  ICB -> id of the last write to any of its
                                    buckets (readers cache window sums on it)
  offsets                           hash  "<topic>:<partition>" -> next offset to read
  tally                             hash  "<topic>:<partition>:<consumed|counted|...>"
  fresh:event                       hash  provider -> latest occurred_at ms counted
  fresh:received                    hash  provider -> wall-clock ms of the latest write
  fresh:m:<minute start ms>         hash  provider -> events received in that minute
  epoch                             string  set once per store lifetime; its absence
                                    after data was written means Redis was emptied
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError

from gapwatch.core.errors import TransientError
from gapwatch.core.ports import FreshnessRow
from gapwatch.core.windows import GRANULARITY_MS, HOUR_MS, Bucket, bucket_start

MINUTE_MS = 60_000

__all__ = ["FreshnessRow", "OffsetConflict", "PartitionCommit", "RedisStore"]

# Applies one chunk atomically. ARGV[1] is JSON: [partitions, buckets, freshness, meta].
# It first checks every partition's stored next-offset equals what the writer expects
# (compare-and-set), so a stale or zombie writer changes nothing; then increments the
# counts, sets the offsets and tallies, and updates freshness.
_APPLY = """
local p = cjson.decode(ARGV[1])
local offsets, tally, fev, frec = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
for _, part in ipairs(p[1]) do
  local cur = redis.call('HGET', offsets, part[1])
  if (cur or '-1') ~= part[2] then
    return {'conflict', part[1], cur or '-1'}
  end
end
for _, part in ipairs(p[1]) do
  redis.call('HSET', offsets, part[1], part[3])
  redis.call('HINCRBY', tally, part[1] .. ':messages', part[4])
  redis.call('HINCRBY', tally, part[1] .. ':consumed', part[5])
  redis.call('HINCRBY', tally, part[1] .. ':counted', part[6])
  redis.call('HINCRBY', tally, part[1] .. ':dead_lettered', part[7])
end
for _, b in ipairs(p[2]) do
  local key, fields = b[1], b[3]
  for i = 1, #fields, 2 do
    redis.call('HINCRBY', key, fields[i], fields[i + 1])
  end
  redis.call('HSET', KEYS[6], b[4], p[4][4])
  redis.call('PEXPIREAT', key, b[2])
end
local meta = p[4]
for _, f in ipairs(p[3]) do
  local cur = tonumber(redis.call('HGET', fev, f[1]) or '0')
  if f[2] > cur then redis.call('HSET', fev, f[1], f[2]) end
  redis.call('HSET', frec, f[1], meta[1])
  redis.call('HINCRBY', meta[2], f[1], f[3])
end
if #p[3] > 0 then redis.call('PEXPIREAT', meta[2], meta[3]) end
if redis.call('EXISTS', KEYS[5]) == 0 then redis.call('SET', KEYS[5], meta[4]) end
return {'ok'}
"""


class OffsetConflict(Exception):
    """The stored offset differs from what the writer expected; nothing was applied."""

    def __init__(self, field: str, stored: int) -> None:
        super().__init__(f"offset conflict on {field}: stored next offset is {stored}")
        self.field = field
        self.stored = stored


@dataclass(frozen=True, slots=True)
class PartitionCommit:
    partition: int
    expected_next: int
    """Next offset the writer believes is stored (-1: none stored yet)."""
    new_next: int
    messages: int
    consumed: int
    counted: int
    dead_lettered: int


class RedisStore:
    def __init__(self, client: aioredis.Redis, namespace: str) -> None:
        self._r = client
        self._p = f"gw:{{{namespace}}}"
        self._apply = client.register_script(_APPLY)

    @classmethod
    def from_url(cls, url: str, namespace: str, timeout_s: float = 30.0) -> RedisStore:
        """``timeout_s`` bounds every call, so a hung Redis becomes a TransientError
        (the API answers 503 quickly; the worker retries) instead of a hang."""
        client = aioredis.Redis.from_url(
            url,
            decode_responses=True,
            socket_timeout=timeout_s,
            socket_connect_timeout=min(timeout_s, 5.0),
        )
        return cls(client, namespace)

    async def close(self) -> None:
        await self._r.aclose()

    # keys -------------------------------------------------------------------------
    def counts_key(self, granularity: str, start_ms: int, icb: str) -> str:
        return f"{self._p}:c:{granularity}:{start_ms}:{icb}"

    @property
    def offsets_key(self) -> str:
        return f"{self._p}:offsets"

    @property
    def tally_key(self) -> str:
        return f"{self._p}:tally"

    @property
    def versions_key(self) -> str:
        return f"{self._p}:versions"

    @property
    def epoch_key(self) -> str:
        return f"{self._p}:epoch"

    def _received_key(self, minute_ms: int) -> str:
        return f"{self._p}:fresh:m:{minute_ms}"

    # writes -----------------------------------------------------------------------
    async def apply(
        self,
        topic: str,
        partitions: Sequence[PartitionCommit],
        deltas: Mapping[tuple[str, int, str], Mapping[str, int]],
        freshness: Mapping[str, tuple[int, int]],
        now_ms: int,
        retention_ms: Mapping[str, int],
    ) -> None:
        """Apply a chunk's counts, offsets, tallies and freshness in one atomic step.

        Raises OffsetConflict (nothing applied) or TransientError (Redis unavailable).
        """
        parts = [
            [
                f"{topic}:{c.partition}",
                str(c.expected_next),
                str(c.new_next),
                c.messages,
                c.consumed,
                c.counted,
                c.dead_lettered,
            ]
            for c in partitions
        ]
        buckets = []
        for (granularity, start, icb), fields in deltas.items():
            flat: list[str | int] = []
            for name, delta in fields.items():
                flat.append(name)
                flat.append(delta)
            expire_at = start + GRANULARITY_MS[granularity] + retention_ms[granularity]
            buckets.append([self.counts_key(granularity, start, icb), expire_at, flat, icb])
        minute = bucket_start(now_ms, MINUTE_MS)
        fresh = [[provider, last, n] for provider, (last, n) in freshness.items()]
        meta = [now_ms, self._received_key(minute), minute + 2 * HOUR_MS, uuid.uuid4().hex]
        payload = json.dumps([parts, buckets, fresh, meta], separators=(",", ":"))
        keys = [
            self.offsets_key,
            self.tally_key,
            f"{self._p}:fresh:event",
            f"{self._p}:fresh:received",
            self.epoch_key,
            self.versions_key,
        ]
        try:
            result = await self._apply(keys=keys, args=[payload])
        except ResponseError as exc:
            raise TransientError(f"redis apply script failed: {exc}") from exc
        except (RedisError, OSError) as exc:
            raise TransientError(f"redis unavailable: {exc}") from exc
        if result[0] == "conflict":
            raise OffsetConflict(str(result[1]), int(result[2]))

    # reads ------------------------------------------------------------------------
    async def load_offsets(self, topic: str) -> dict[int, int]:
        """partition -> next offset to read, for partitions that have any."""
        prefix = f"{topic}:"
        return {
            int(k[len(prefix) :]): v
            for k, v in (await self.all_offsets()).items()
            if k.startswith(prefix)
        }

    async def all_offsets(self) -> dict[str, int]:
        """``"<topic>:<partition>"`` -> next offset to read, for every topic."""
        return await self._int_hash(self.offsets_key)

    async def tallies(self) -> dict[str, int]:
        """``"<topic>:<partition>:<kind>"`` -> total, written with the counts."""
        return await self._int_hash(self.tally_key)

    async def _int_hash(self, key: str) -> dict[str, int]:
        try:
            raw: Any = await self._r.hgetall(key)
        except (RedisError, OSError) as exc:
            raise TransientError(f"redis unavailable: {exc}") from exc
        return {str(k): int(v) for k, v in raw.items()}

    async def sum_counts(self, icbs: Sequence[str], buckets: Sequence[Bucket]) -> dict[str, int]:
        """Sum every field over the given buckets of the given ICBs."""
        try:
            async with self._r.pipeline(transaction=False) as pipe:
                for icb in icbs:
                    for b in buckets:
                        pipe.hgetall(self.counts_key(b.granularity, b.start_ms, icb))
                results: list[dict[str, str]] = await pipe.execute()
        except (RedisError, OSError) as exc:
            raise TransientError(f"redis unavailable: {exc}") from exc
        total: dict[str, int] = {}
        for fields in results:
            for name, value in fields.items():
                total[name] = total.get(name, 0) + int(value)
        return total

    async def versions(self) -> dict[str, str]:
        """ICB -> id of the last write to any of its buckets (ICBs never written are
        absent). One small hash, so readers can cache sums on it."""
        try:
            found: Any = await self._r.hgetall(self.versions_key)
        except (RedisError, OSError) as exc:
            raise TransientError(f"redis unavailable: {exc}") from exc
        return {str(k): str(v) for k, v in found.items()}

    async def freshness(self, now_ms: int) -> dict[str, FreshnessRow]:
        """Per provider: latest event time, latest write, events received in the last
        60 minutes (exact to the minute)."""
        minute = bucket_start(now_ms, MINUTE_MS)
        try:
            async with self._r.pipeline(transaction=False) as pipe:
                pipe.hgetall(f"{self._p}:fresh:event")
                pipe.hgetall(f"{self._p}:fresh:received")
                for i in range(60):
                    pipe.hgetall(self._received_key(minute - i * MINUTE_MS))
                last_event, last_received, *minutes = await pipe.execute()
        except (RedisError, OSError) as exc:
            raise TransientError(f"redis unavailable: {exc}") from exc
        recent: dict[str, int] = {}
        for counts in minutes:
            for provider, n in counts.items():
                recent[provider] = recent.get(provider, 0) + int(n)
        return {
            provider: FreshnessRow(
                provider,
                int(last_event[provider]) if provider in last_event else None,
                int(last_received[provider]) if provider in last_received else None,
                recent.get(provider, 0),
            )
            for provider in sorted(set(last_event) | set(last_received))
        }

    async def epoch(self) -> str | None:
        value: Any = await self._r.get(self.epoch_key)
        return None if value is None else str(value)

    async def ping(self) -> bool:
        try:
            return bool(await self._r.ping())
        except (RedisError, OSError):
            return False
