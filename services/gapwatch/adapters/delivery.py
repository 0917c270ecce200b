"""Delivery plumbing shared by the HTTP alert channels (Alertmanager v2, webhooks).

Each destination URL gets its own ``Outbox``: a bounded queue and one sender task, so a
slow or dead receiver delays only itself. ``offer`` never waits: when the queue is full
the oldest request is dropped (and counted), because a newer alert state supersedes an
older one and the periodic resend repairs the gap. Failed requests are retried with
capped exponential backoff (``core.backoff``) plus jitter, up to a fixed number of
attempts, then counted as failed and logged; a 4xx other than 408/425/429 is not retried
because sending the same body again cannot succeed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import quote

import aiohttp

from gapwatch.adapters.delivery_metrics import DeliveryMetrics
from gapwatch.core.alert_events import AlertEvent
from gapwatch.core.backoff import backoff_ms

__all__ = [
    "GO_ZERO_TIME",
    "Outbox",
    "QueuedChannel",
    "RetryPolicy",
    "Sender",
    "generator_url",
    "retryable",
    "rfc3339",
    "wall_ms",
]

logger = logging.getLogger(__name__)

GO_ZERO_TIME: Final = "0001-01-01T00:00:00Z"
"""Go's zero ``time.Time`` in JSON: what Alertmanager sends as endsAt while firing."""

# HTTP statuses worth retrying besides 5xx: timeout, too early, rate limited.
_RETRYABLE_4XX: Final = frozenset({408, 425, 429})


def rfc3339(ms: int) -> str:
    """Epoch milliseconds as RFC 3339 in UTC with a ``Z``, millisecond precision
    (e.g. ``2026-11-27T14:51:21.123Z``): the form Alertmanager parses and sends."""
    seconds, millis = divmod(ms, 1000)
    stamp = datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{millis:03d}Z"


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


def generator_url(template: str, event: AlertEvent) -> str:
    """The alert's link back to gapwatch: ``template`` with ``{id}`` replaced by the
    URL-quoted alert id (e.g. ``https://gapwatch.example/v1/alerts/{id}``); "" if none."""
    return template.replace("{id}", quote(event.id, safe=""))


def retryable(status: int) -> bool:
    return status >= 500 or status in _RETRYABLE_4XX


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 5
    """Attempts per request, the first included."""
    base_ms: int = 500
    cap_ms: int = 30_000
    """No wait longer than this: with the defaults 0.5, 1, 2, 4 s between 5 attempts."""
    jitter: bool = True
    timeout_s: float = 10.0
    """Per attempt: connect, send and read the reply."""

    def __post_init__(self) -> None:
        if self.max_attempts < 1 or self.base_ms < 0 or self.cap_ms < self.base_ms:
            raise ValueError("max_attempts >= 1 and 0 <= base_ms <= cap_ms required")

    def delay_s(self, attempt: int, rand: float) -> float:
        """Wait after failed attempt ``attempt`` (0-based). With jitter the wait is uniform
        in [half, all] of the backoff ("equal jitter"): senders that failed together
        spread out, and the wait still grows. ``rand`` is in [0, 1)."""
        full = backoff_ms(attempt, self.base_ms, self.cap_ms)
        if self.jitter:
            return (full / 2 + full / 2 * rand) / 1000
        return full / 1000


class Outbox:
    """One URL: a bounded queue of JSON bodies and the coroutine that POSTs them in order."""

    def __init__(
        self,
        url: str,
        channel: str,
        *,
        policy: RetryPolicy,
        metrics: DeliveryMetrics,
        maxsize: int,
        rng: random.Random | None = None,
    ) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be >= 1")
        self.url = url
        self.channel = channel
        self.policy = policy
        self.metrics = metrics
        self.queue: asyncio.Queue[Any] = asyncio.Queue(maxsize)
        self.rng = rng or random.Random()  # noqa: S311 - retry jitter, not cryptography
        self.dropped = 0

    def offer(self, body: Any) -> None:
        """Queue ``body`` without waiting; if full, drop the oldest queued body."""
        if self.queue.full():
            self.queue.get_nowait()
            self.queue.task_done()
            self.dropped += 1
            self.metrics.count(self.channel, "dropped")
            self.metrics.queued.labels(self.channel).dec()
            logger.warning("alert delivery queue full channel=%s url=%s", self.channel, self.url)
        self.queue.put_nowait(body)
        self.metrics.queued.labels(self.channel).inc()

    async def run(self, session: aiohttp.ClientSession) -> None:
        while True:
            body = await self.queue.get()
            try:
                await self.deliver(session, body)
            finally:
                self.metrics.queued.labels(self.channel).dec()
                self.queue.task_done()

    async def deliver(self, session: aiohttp.ClientSession, body: Any) -> bool:
        """POST ``body`` until accepted or the attempts run out; True when accepted."""
        timeout = aiohttp.ClientTimeout(total=self.policy.timeout_s)
        for attempt in range(self.policy.max_attempts):
            try:
                async with session.post(self.url, json=body, timeout=timeout) as resp:
                    if 200 <= resp.status < 300:
                        self.metrics.count(self.channel, "sent")
                        return True
                    error = f"HTTP {resp.status}: {(await resp.text())[:200]}"
                    final = not retryable(resp.status)
            except (aiohttp.ClientError, TimeoutError) as exc:
                error, final = repr(exc), False
            if final or attempt + 1 >= self.policy.max_attempts:
                self.metrics.count(self.channel, "failed")
                logger.error(
                    "alert delivery failed channel=%s url=%s attempts=%d error=%s",
                    self.channel,
                    self.url,
                    attempt + 1,
                    error,
                )
                return False
            self.metrics.count(self.channel, "retried")
            delay = self.policy.delay_s(attempt, self.rng.random())
            logger.info(
                "alert delivery retry channel=%s url=%s attempt=%d wait_s=%.2f error=%s",
                self.channel,
                self.url,
                attempt + 1,
                delay,
                error,
            )
            await asyncio.sleep(delay)
        return False  # pragma: no cover - the loop always returns


class Sender:
    """A channel's outboxes (one per URL) and their lifetime: ``run`` sends until
    ``close``; ``close`` lets queued requests finish for a while, then stops."""

    def __init__(
        self,
        channel: str,
        urls: Sequence[str],
        *,
        policy: RetryPolicy,
        metrics: DeliveryMetrics,
        queue_size: int,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        if not urls:
            raise ValueError(f"{channel}: at least one URL required")
        self.outboxes = [
            Outbox(u, channel, policy=policy, metrics=metrics, maxsize=queue_size) for u in urls
        ]
        self._session = session
        self._closing = asyncio.Event()
        self._stopped = asyncio.Event()
        self._running = False
        self._flush_timeout_s = 0.0

    def offer(self, body: Any) -> None:
        for outbox in self.outboxes:
            outbox.offer(body)

    async def run(self) -> None:
        """Send until ``close()``; run it as a background task."""
        if self._running:
            raise RuntimeError("already running")
        self._running = True
        try:
            async with contextlib.AsyncExitStack() as stack:
                session = self._session
                if session is None:
                    session = await stack.enter_async_context(aiohttp.ClientSession())
                workers = [asyncio.create_task(o.run(session)) for o in self.outboxes]
                try:
                    await self._closing.wait()
                    await self.flush(self._flush_timeout_s)
                finally:
                    for worker in workers:
                        worker.cancel()
                    await asyncio.gather(*workers, return_exceptions=True)
        finally:
            self._stopped.set()

    async def flush(self, timeout_s: float) -> bool:
        """Wait until every queued request has been delivered or given up; False on timeout."""
        try:
            async with asyncio.timeout(timeout_s):
                await asyncio.gather(*(o.queue.join() for o in self.outboxes))
        except TimeoutError:
            return False
        return True

    async def close(self, flush_timeout_s: float = 5.0) -> None:
        """Stop ``run`` after up to ``flush_timeout_s`` for what is queued; idempotent."""
        self._flush_timeout_s = flush_timeout_s
        self._closing.set()
        if self._running:
            await self._stopped.wait()


class QueuedChannel:
    """What every queued channel does alike: its ``sender`` delivers in the background.
    Subclasses set ``self.sender`` and translate alerts into its requests."""

    sender: Sender

    async def run(self) -> None:
        """Deliver until ``close()``; start it as a background task."""
        await self.sender.run()

    async def flush(self, timeout_s: float = 5.0) -> bool:
        """Wait for every queued request to be delivered or given up (tests, shutdown)."""
        return await self.sender.flush(timeout_s)

    async def close(self, flush_timeout_s: float = 5.0) -> None:
        await self.sender.close(flush_timeout_s)
