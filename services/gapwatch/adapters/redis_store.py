"""Redis: the key scheme, the atomic counts-plus-offsets write, and typed reads.

Every key starts ``gw:{<namespace>}:`` so on Redis Cluster all of a deployment's keys
share one hash slot and the apply script can touch them together.

Keys
  c:<h|d>:<bucket start ms>:<ICB>   hash  "<measure>|<breakdown>|<group>" -> count;
                                    ICB "ENG" holds England's sums
  c:l:<day start ms>:<ICB>          hash  "<measure>|lsoa|<LSOA 2021 code>" -> count:
                                    rate numerators per LSOA (day retention, no ENG)
  versions                          hash  ICB -> id of the last write to any of its
                                    buckets (readers cache window sums on it)
  dayversions                       hash  "<ICB>:<day start ms>" -> id of the last write
                                    to that day bucket (the alerter re-reads only
                                    changed days)
  offsets                           hash  "<topic>:<partition>" -> next offset to read
  tally                             hash  "<topic>:<partition>:<consumed|counted|...>"
  fresh:event                       hash  provider -> latest occurred_at ms counted
  fresh:received                    hash  provider -> wall-clock ms of the latest write
  fresh:m:<minute start ms>         hash  provider -> events received in that minute
  seen:<topic>:<partition>:<day>    string  packed 64-bit keys of the event ids counted
                                    that may be forgotten after that day (dedup)
  epoch                             string  id of this store's life: every write checks
                                    it, so a flushed or restarted-empty Redis (no
                                    epoch) or a rebuild (new epoch) stops old writers;
                                    "rebuilding:<id>" while a rebuild clears the keys
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError

from gapwatch.core.counting import LSOA_DAY, lsoa_field
from gapwatch.core.errors import TransientError
from gapwatch.core.ports import FreshnessRow
from gapwatch.core.windows import DAY_MS, GRANULARITY_MS, HOUR_MS, Bucket, bucket_start

MINUTE_MS = 60_000

__all__ = [
    "REBUILDING",
    "EpochChanged",
    "FreshnessRow",
    "OffsetConflict",
    "PartitionCommit",
    "RedisStore",
]

# Applies one chunk atomically. ARGV[1] is JSON: [partitions, buckets, freshness, meta,
# seen]; ARGV[2..] are the packed event-id keys that ``seen`` entries point at. It first
# checks the store's epoch is the writer's (a flushed or rebuilt store refuses old
# writers) and that every partition's stored next-offset equals what the writer expects
# (compare-and-set), so a stale or zombie writer changes nothing; then increments the
# counts, sets the offsets and tallies, records the new event ids, updates freshness.
_APPLY = """
local p = cjson.decode(ARGV[1])
local offsets, tally, fev, frec = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local epoch = redis.call('GET', KEYS[5])
if epoch ~= p[4][5] then return {'epoch', epoch or ''} end
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
  redis.call('HINCRBY', tally, part[1] .. ':duplicates', part[8])
end
for _, s in ipairs(p[5]) do
  redis.call('APPEND', s[1], ARGV[s[3]])
  redis.call('PEXPIREAT', s[1], s[2])
end
for _, b in ipairs(p[2]) do
  local key, fields = b[1], b[3]
  for i = 1, #fields, 2 do
    redis.call('HINCRBY', key, fields[i], fields[i + 1])
  end
  redis.call('HSET', KEYS[6], b[4], p[4][4])
  if b[5] ~= '' then redis.call('HSET', KEYS[7], b[5], p[4][4]) end
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
return {'ok'}
"""


_SCAN_COUNT = 20_000
"""HSCAN COUNT hint: more than an ICB's LSOAs x 3 measures, so one call scans a hash."""


def _glob_escape(text: str) -> str:
    """``text`` as a literal inside a Redis MATCH pattern."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


REBUILDING = "rebuilding:"
"""Prefix of the epoch while a rebuild clears the store."""
_REBUILD_LEASE_MS = 60_000
"""A rebuilder that dies mid-clear loses its claim after this long."""


class EpochChanged(Exception):
    """The store's epoch is not the writer's: Redis was emptied or rebuilt. Nothing was
    applied; the writer must resume from what the store now holds."""

    def __init__(self, found: str | None) -> None:
        super().__init__(f"store epoch is now {found or 'missing'}")
        self.found = found


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
    duplicates: int = 0


class RedisStore:
    def __init__(self, client: aioredis.Redis, namespace: str) -> None:
        self._r = client
        pool = client.connection_pool
        # Packed event-id keys are binary: read them on connections that do not decode.
        self._bin = aioredis.Redis(
            connection_pool=aioredis.ConnectionPool(
                connection_class=pool.connection_class,
                **{**pool.connection_kwargs, "decode_responses": False},
            )
        )
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
        await self._bin.aclose()

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
    def day_versions_key(self) -> str:
        return f"{self._p}:dayversions"

    @property
    def epoch_key(self) -> str:
        return f"{self._p}:epoch"

    def seen_key(self, topic: str, partition: int, day: int) -> str:
        return f"{self._p}:seen:{topic}:{partition}:{day}"

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
        *,
        epoch: str,
        seen: Mapping[tuple[int, int], bytes] | None = None,
    ) -> None:
        """Apply a chunk's counts, offsets, tallies, new event ids and freshness in one
        atomic step, if the store's epoch is still ``epoch``.

        ``seen`` maps (partition, expiry day) to packed keys of first-time event ids.
        Raises EpochChanged or OffsetConflict (nothing applied in either case) or
        TransientError (Redis unavailable).
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
                c.duplicates,
            ]
            for c in partitions
        ]
        buckets = []
        for (granularity, start, icb), fields in deltas.items():
            flat: list[str | int] = []
            for name, delta in fields.items():
                flat.append(name)
                flat.append(delta)
            # Per-LSOA buckets (LSOA_DAY) are day buckets: a day long, kept as long.
            span, kept = GRANULARITY_MS.get(granularity, DAY_MS), retention_ms.get(granularity)
            expire_at = start + span + (retention_ms["d"] if kept is None else kept)
            day_field = f"{icb}:{start}" if granularity == "d" else ""
            buckets.append(
                [self.counts_key(granularity, start, icb), expire_at, flat, icb, day_field]
            )
        minute = bucket_start(now_ms, MINUTE_MS)
        fresh = [[provider, last, n] for provider, (last, n) in freshness.items()]
        meta = [now_ms, self._received_key(minute), minute + 2 * HOUR_MS, uuid.uuid4().hex, epoch]
        # Ids are kept a day past their expiry day on the wall clock; the worker's
        # in-memory index forgets on the partition's own clock (see ingest.dedup).
        seen_entries, blobs = [], []
        for (partition, day), blob in (seen or {}).items():
            blobs.append(blob)
            key = self.seen_key(topic, partition, day)
            seen_entries.append([key, (day + 2) * DAY_MS, len(blobs) + 1])
        payload = json.dumps([parts, buckets, fresh, meta, seen_entries], separators=(",", ":"))
        keys = [
            self.offsets_key,
            self.tally_key,
            f"{self._p}:fresh:event",
            f"{self._p}:fresh:received",
            self.epoch_key,
            self.versions_key,
            self.day_versions_key,
        ]
        try:
            result = await self._apply(keys=keys, args=[payload, *blobs])
        except ResponseError as exc:
            raise TransientError(f"redis apply script failed: {exc}") from exc
        except (RedisError, OSError) as exc:
            raise TransientError(f"redis unavailable: {exc}") from exc
        if result[0] == "conflict":
            raise OffsetConflict(str(result[1]), int(result[2]))
        if result[0] == "epoch":
            raise EpochChanged(str(result[1]) or None)

    # the store's life -------------------------------------------------------------
    async def adopt_epoch(self) -> tuple[str, bool]:
        """The epoch to write under, and whether this call started it.

        A store without an epoch is new, or was emptied (flushed, or restarted without
        persistence): the first caller claims it, deletes whatever partial state is
        left so a replay from the earliest offsets cannot double count, and starts a
        new epoch. Raises TransientError while another process is rebuilding.
        """
        try:
            found: Any = await self._r.get(self.epoch_key)
            if found is None:
                claim = f"{REBUILDING}{uuid.uuid4().hex}"
                if await self._r.set(self.epoch_key, claim, nx=True, px=_REBUILD_LEASE_MS):
                    return await self._clear_and_start(claim), True
                found = await self._r.get(self.epoch_key)
        except (RedisError, OSError) as exc:
            raise TransientError(f"redis unavailable: {exc}") from exc
        if found is None or str(found).startswith(REBUILDING):
            raise TransientError("the store is being rebuilt by another process")
        return str(found), False

    async def rebuild(self) -> str:
        """Empty this namespace and start a new epoch: every worker notices (its writes
        are refused), resumes from the now-empty offsets, i.e. replays the topic from
        its earliest retained offset, and so rebuilds every count."""
        claim = f"{REBUILDING}{uuid.uuid4().hex}"
        try:
            await self._r.set(self.epoch_key, claim, px=_REBUILD_LEASE_MS)
            return await self._clear_and_start(claim)
        except (RedisError, OSError) as exc:
            raise TransientError(f"redis unavailable: {exc}") from exc

    async def _clear_and_start(self, claim: str) -> str:
        batch: list[str] = []
        async for key in self._r.scan_iter(match=f"{self._p}:*", count=1000):
            if key != self.epoch_key:
                batch.append(key)
            if len(batch) >= 1000:
                await self._r.unlink(*batch)
                batch = []
        if batch:
            await self._r.unlink(*batch)
        epoch = uuid.uuid4().hex
        # Only the claimant may finish: a rebuild started meanwhile keeps its own claim.
        if await self._r.get(self.epoch_key) != claim:
            raise TransientError("another rebuild took over the store")
        await self._r.set(self.epoch_key, epoch)
        return epoch

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

    async def load_seen(self, topic: str, partition: int) -> dict[int, bytes]:
        """Expiry day -> packed keys of the event ids a partition has counted."""
        prefix = self.seen_key(topic, partition, 0)[:-1]
        try:
            keys = [k async for k in self._r.scan_iter(match=f"{prefix}*", count=1000)]
            blobs: list[Any] = await self._bin.mget(keys) if keys else []
        except (RedisError, OSError) as exc:
            raise TransientError(f"redis unavailable: {exc}") from exc
        return {
            int(key[len(prefix) :]): blob
            for key, blob in zip(keys, blobs, strict=True)
            if blob is not None
        }

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

    async def lsoa_counts(
        self, icb: str, day_starts: Sequence[int], measure: str
    ) -> dict[str, int]:
        """LSOA 2021 code -> count of ``measure`` over the given days of one ICB.

        One pipelined HSCAN per per-LSOA day bucket, with the measure as MATCH pattern
        so only its fields cross the network; a COUNT above the hash's size finishes
        most scans in one call, the rest are followed up. HSCAN may return a field twice
        while the hash is rehashing, so each bucket's fields are collected into a dict
        (last value wins) before summing.
        """
        prefix = lsoa_field(measure, "")
        pattern = _glob_escape(prefix) + "*"
        keys = [self.counts_key(LSOA_DAY, day, icb) for day in day_starts]
        found: list[dict[str, str]] = [{} for _ in keys]
        cursors = dict.fromkeys(range(len(keys)), 0)
        try:
            while cursors:
                async with self._r.pipeline(transaction=False) as pipe:
                    for i, cursor in cursors.items():
                        pipe.hscan(keys[i], cursor, match=pattern, count=_SCAN_COUNT)
                    results: list[Any] = await pipe.execute()
                next_cursors: dict[int, int] = {}
                for i, (cursor, fields) in zip(cursors, results, strict=True):
                    found[i].update(fields)
                    if int(cursor):
                        next_cursors[i] = int(cursor)
                cursors = next_cursors
        except (RedisError, OSError) as exc:
            raise TransientError(f"redis unavailable: {exc}") from exc
        total: dict[str, int] = {}
        cut = len(prefix)
        for fields in found:
            for name, value in fields.items():
                suffix = name[cut:]
                total[suffix] = total.get(suffix, 0) + int(value)
        return total

    async def day_versions(self) -> dict[tuple[str, int], str]:
        """(ICB, day start ms) -> id of the last write to that day bucket."""
        try:
            found: Any = await self._r.hgetall(self.day_versions_key)
        except (RedisError, OSError) as exc:
            raise TransientError(f"redis unavailable: {exc}") from exc
        out: dict[tuple[str, int], str] = {}
        for field, value in found.items():
            icb, _, start = str(field).rpartition(":")
            out[(icb, int(start))] = str(value)
        return out

    async def day_versions_of(self, icb: str, days: Sequence[int]) -> dict[tuple[str, int], str]:
        """The write ids of one ICB's given days (those ever written): a request for one
        chart reads its own days, not the whole hash."""
        if not days:
            return {}
        try:
            found: Any = await self._r.hmget(self.day_versions_key, [f"{icb}:{d}" for d in days])
        except (RedisError, OSError) as exc:
            raise TransientError(f"redis unavailable: {exc}") from exc
        return {(icb, d): str(v) for d, v in zip(days, found, strict=True) if v is not None}

    async def forget_day_versions(self, keys: Sequence[tuple[str, int]]) -> None:
        """Drop entries of day buckets that have expired (the hash never expires)."""
        if not keys:
            return
        try:
            await self._r.hdel(self.day_versions_key, *(f"{icb}:{day}" for icb, day in keys))
        except (RedisError, OSError) as exc:
            raise TransientError(f"redis unavailable: {exc}") from exc

    async def read_day_fields(
        self, buckets: Sequence[tuple[str, int]], fields: Sequence[str]
    ) -> list[list[int]]:
        """For each (ICB, day start ms), the given fields of its day bucket (0 if absent),
        in the order asked: one pipelined HMGET per bucket."""
        if not buckets:
            return []
        try:
            async with self._r.pipeline(transaction=False) as pipe:
                for icb, day in buckets:
                    pipe.hmget(self.counts_key("d", day, icb), list(fields))
                results = await pipe.execute()
        except (RedisError, OSError) as exc:
            raise TransientError(f"redis unavailable: {exc}") from exc
        return [[int(v) if v is not None else 0 for v in row] for row in results]

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
        try:
            value: Any = await self._r.get(self.epoch_key)
        except (RedisError, OSError) as exc:
            raise TransientError(f"redis unavailable: {exc}") from exc
        return None if value is None else str(value)

    async def ping(self) -> bool:
        try:
            return bool(await self._r.ping())
        except (RedisError, OSError):
            return False
