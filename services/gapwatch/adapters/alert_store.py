"""Redis: alert state that survives restarts and rebuilds, and the change stream.

Keys start ``gwa:{<namespace>}:``, outside the counts' ``gw:{<namespace>}:`` prefix, so
``gapwatch rebuild`` (which empties the counts and replays the topic) keeps which alerts
are firing and since when; the alerter then re-evaluates every series on the rebuilt
counts and resolves what no longer holds.

Keys
  gap       hash    alert id -> the gap alert's state (JSON)
  feeds     hash    trust -> the feed watch's state (JSON)
  current   hash    alert id -> the alert's latest change as an AlertEvent (JSON):
                    what GET /v1/alerts serves
  changes   stream  every change in order, field "event" (SSE reads it, resuming from
                    Last-Event-ID); capped at about ``STREAM_MAXLEN`` entries
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any, Final

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from gapwatch.core.alert_events import AlertEvent
from gapwatch.core.errors import TransientError
from gapwatch.core.feed_staleness import FeedState
from gapwatch.core.gap_alerts import Alert, AlertKey, Evidence

__all__ = ["STREAM_MAXLEN", "AlertStore", "alert_from_json", "alert_to_json"]

STREAM_MAXLEN: Final = 10_000
RESOLVED_KEPT_MS: Final = 7 * 86_400_000
"""Resolved alerts stay listed (state=resolved) for a week."""


def alert_to_json(alert: Alert) -> str:
    return json.dumps(asdict(alert), separators=(",", ":"))


def alert_from_json(text: str | bytes) -> Alert:
    data: dict[str, Any] = json.loads(text)
    return Alert(
        key=AlertKey(**data["key"]),
        state=data["state"],
        rule=data["rule"],
        method=data["method"],
        first_seen_ms=int(data["first_seen_ms"]),
        last_seen_ms=int(data["last_seen_ms"]),
        resolved_ms=None if data["resolved_ms"] is None else int(data["resolved_ms"]),
        evidence=tuple(Evidence(**e) for e in data["evidence"]),
    )


def _feed_from_json(text: str | bytes) -> FeedState:
    return FeedState(**json.loads(text))


class AlertStore:
    def __init__(self, client: aioredis.Redis, namespace: str) -> None:
        self._r = client
        self._p = f"gwa:{{{namespace}}}"

    @classmethod
    def from_url(cls, url: str, namespace: str, timeout_s: float = 30.0) -> AlertStore:
        client = aioredis.Redis.from_url(
            url, decode_responses=True, socket_timeout=timeout_s, socket_connect_timeout=timeout_s
        )
        return cls(client, namespace)

    async def close(self) -> None:
        await self._r.aclose()

    @property
    def changes_key(self) -> str:
        return f"{self._p}:changes"

    # the alerter's own state -----------------------------------------------------
    async def load_gap_alerts(self) -> dict[str, Alert]:
        found = await self._call(self._r.hgetall(f"{self._p}:gap"))
        return {str(k): alert_from_json(v) for k, v in found.items()}

    async def load_feeds(self) -> dict[str, FeedState]:
        found = await self._call(self._r.hgetall(f"{self._p}:feeds"))
        return {str(k): _feed_from_json(v) for k, v in found.items()}

    async def save(
        self,
        alerts: Sequence[Alert],
        feeds: Sequence[FeedState],
        events: Sequence[AlertEvent],
    ) -> None:
        """Record new state and the changes it made, atomically (MULTI): a crash leaves
        either the old state with no stream entries or the new state with all of them."""
        try:
            async with self._r.pipeline(transaction=True) as pipe:
                if alerts:
                    pipe.hset(f"{self._p}:gap", mapping={a.id: alert_to_json(a) for a in alerts})
                if feeds:
                    pipe.hset(
                        f"{self._p}:feeds",
                        mapping={f.trust: json.dumps(asdict(f)) for f in feeds},
                    )
                for event in events:
                    text = json.dumps(event.as_json(), separators=(",", ":"))
                    pipe.hset(f"{self._p}:current", event.id, text)
                    pipe.xadd(
                        self.changes_key, {"event": text}, maxlen=STREAM_MAXLEN, approximate=True
                    )
                await pipe.execute()
        except (RedisError, OSError) as exc:
            raise TransientError(f"redis unavailable: {exc}") from exc

    async def forget_resolved(self, current: Sequence[AlertEvent], now_ms: int) -> list[AlertEvent]:
        """Drop alerts resolved more than ``RESOLVED_KEPT_MS`` ago from ``current`` (as
        just read by the caller) and from the store; return the rest."""
        old = {
            e.id
            for e in current
            if not e.firing and e.ends_ms is not None and now_ms - e.ends_ms > RESOLVED_KEPT_MS
        }
        if old:
            await self._call(self._r.hdel(f"{self._p}:current", *old))
        return [e for e in current if e.id not in old]

    # readers (API) ---------------------------------------------------------------
    async def current(self) -> list[AlertEvent]:
        """Every alert's latest change, firing first, newest first."""
        found = await self._call(self._r.hgetall(f"{self._p}:current"))
        events = [AlertEvent.from_json(json.loads(v)) for v in found.values()]
        return sorted(events, key=lambda e: (not e.firing, -e.at_ms, e.id))

    async def last_change_id(self) -> str:
        """The stream id of the newest change ("0-0" when none): SSE clients without a
        Last-Event-ID start after it."""
        found = await self._call(self._r.xrevrange(self.changes_key, count=1))
        return str(found[0][0]) if found else "0-0"

    async def changes_after(
        self, last_id: str, block_ms: int, count: int = 100
    ) -> list[tuple[str, AlertEvent]]:
        """Changes after stream id ``last_id``, waiting up to ``block_ms`` for one."""
        found = await self._call(
            self._r.xread({self.changes_key: last_id}, count=count, block=block_ms)
        )
        out = []
        for _, entries in found or []:
            for entry_id, fields in entries:
                out.append((str(entry_id), AlertEvent.from_json(json.loads(fields["event"]))))
        return out

    async def clear(self) -> int:
        """Forget every alert (a development stack starting over); returns keys removed."""
        keys = [k async for k in self._r.scan_iter(match=f"{self._p}:*", count=1000)]
        if keys:
            await self._call(self._r.delete(*keys))
        return len(keys)

    async def ping(self) -> bool:
        try:
            return bool(await self._r.ping())
        except (RedisError, OSError):
            return False

    async def _call(self, awaitable: Any) -> Any:
        try:
            return await awaitable
        except (RedisError, OSError) as exc:
            raise TransientError(f"redis unavailable: {exc}") from exc
