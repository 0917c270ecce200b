"""Alert delivery against a real Alertmanager (Debian's prometheus-alertmanager) and a
local webhook receiver: grouping, resolution, retries through outages and 500s, and
Alertmanager forwarding our alert to a webhook in the same shape we send ourselves."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry

from gapwatch.adapters.alertmanager import AlertmanagerNotifier
from gapwatch.adapters.delivery import RetryPolicy
from gapwatch.adapters.delivery_metrics import DeliveryMetrics
from gapwatch.adapters.webhooks import (
    WebhookNotifier,
    fingerprint,
    group_key,
    webhook_alert,
    webhook_message,
)
from gapwatch.core.alert_events import AlertEvent
from gapwatch.devstack.alertmanager import AlertmanagerHandle, start_alertmanager
from gapwatch.devstack.services import free_port
from tests.conftest import need

pytestmark = pytest.mark.integration

T = TypeVar("T")
FAST = RetryPolicy(max_attempts=5, base_ms=50, cap_ms=200, timeout_s=2.0)
LABELS = {
    "alertname": "GapWidening",
    "severity": "warning",
    "icb": "QOP",
    "indicator": "emergency_admission_rate",
    "breakdown": "imd_quintile",
    "measure": "sii",
}


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def gap_event() -> AlertEvent:
    now = now_ms()
    return AlertEvent(
        id="gap:QOP:emergency_admission_rate:imd_quintile:sii",
        change="new",
        state="firing",
        labels=dict(LABELS),
        annotations={"summary": "SII gap widening in QOP emergency admissions"},
        starts_ms=now - 60_000,
        ends_ms=None,
        at_ms=now,
    )


def resolve(event: AlertEvent) -> AlertEvent:
    now = now_ms()
    return replace(event, change="resolved", state="resolved", ends_ms=now, at_ms=now)


@pytest.fixture(scope="module")
def have_alertmanager() -> None:
    need(
        shutil.which("prometheus-alertmanager") is not None,
        "no Alertmanager: apt-get install prometheus-alertmanager",
    )


@pytest.fixture()
def alertmanager(have_alertmanager: None) -> Iterator[AlertmanagerHandle]:
    with start_alertmanager() as handle:
        yield handle


async def eventually(
    probe: Callable[[], Awaitable[T]], done: Callable[[T], bool], timeout_s: float = 15.0
) -> T:
    deadline = time.monotonic() + timeout_s
    while True:
        value = await probe()
        if done(value):
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"not reached in {timeout_s}s; last: {value!r}")
        await asyncio.sleep(0.1)


async def get_json(url: str) -> Any:
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        resp.raise_for_status()
        return await resp.json()


@contextlib.asynccontextmanager
async def running(notifier: AlertmanagerNotifier | WebhookNotifier) -> AsyncIterator[None]:
    task = asyncio.create_task(notifier.run())
    try:
        yield
    finally:
        await notifier.close(flush_timeout_s=1.0)
        await task


class Receiver:
    """A webhook endpoint that answers 500 to its first ``fail_first`` requests."""

    def __init__(self, fail_first: int = 0) -> None:
        self.fail_first = fail_first
        self.requests = 0
        self.bodies: list[dict[str, Any]] = []
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.requests += 1
        body = await request.json()
        if self.requests <= self.fail_first:
            return web.Response(status=500, text="not yet")
        self.bodies.append(body)
        return web.Response(status=200)


@contextlib.asynccontextmanager
async def receiver(fail_first: int = 0) -> AsyncIterator[Receiver]:
    hook = Receiver(fail_first)
    app = web.Application()
    app.router.add_post("/hook", hook.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    hook.url = f"http://127.0.0.1:{port}/hook"
    try:
        yield hook
    finally:
        await runner.cleanup()


def ours(alerts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [a for a in alerts if a["labels"] == LABELS]


# --- Alertmanager v2 API ------------------------------------------------------------------


def test_a_gap_alert_arrives_grouped_and_leaves_when_resolved(
    alertmanager: AlertmanagerHandle,
) -> None:
    async def scenario() -> None:
        metrics = DeliveryMetrics.create(CollectorRegistry())
        notifier = AlertmanagerNotifier([alertmanager.url], policy=FAST, metrics=metrics)
        event = gap_event()
        async with running(notifier):
            await notifier.notify(event)
            groups = await eventually(
                lambda: get_json(f"{alertmanager.url}/api/v2/alerts/groups"),
                lambda gs: any(ours(g["alerts"]) for g in gs),
            )
            [group] = [g for g in groups if ours(g["alerts"])]
            assert group["labels"] == {
                "alertname": "GapWidening",
                "icb": "QOP",
                "indicator": "emergency_admission_rate",
            }
            [alert] = ours(group["alerts"])
            assert alert["status"]["state"] == "active"
            assert alert["annotations"] == event.annotations
            assert alert["fingerprint"] == fingerprint(LABELS)

            await notifier.notify(resolve(event))
            await eventually(
                lambda: get_json(f"{alertmanager.url}/api/v2/alerts?active=true"),
                lambda alerts: not ours(alerts),
            )
        assert metrics.value("alertmanager", "sent") == 2
        assert metrics.value("alertmanager", "failed") == 0

    asyncio.run(scenario())


def test_a_stopped_alertmanager_gets_the_alert_once_it_is_started(
    have_alertmanager: None, tmp_path: Path
) -> None:
    async def scenario() -> None:
        port = free_port()  # nothing listens yet: connection refused
        metrics = DeliveryMetrics.create(CollectorRegistry())
        policy = RetryPolicy(max_attempts=100, base_ms=50, cap_ms=300, timeout_s=2.0)
        notifier = AlertmanagerNotifier(
            [f"http://127.0.0.1:{port}"], policy=policy, metrics=metrics
        )
        async with running(notifier):
            started = time.monotonic()
            await notifier.notify(gap_event())
            assert time.monotonic() - started < 0.05  # queued, not sent

            async def retried() -> float:
                return metrics.value("alertmanager", "retried")

            await eventually(retried, lambda n: n >= 3)
            assert metrics.value("alertmanager", "sent") == 0
            handle = await asyncio.to_thread(start_alertmanager, port=port, workdir=tmp_path)
            try:
                assert await notifier.flush(timeout_s=20)
                alerts = await get_json(f"{handle.url}/api/v2/alerts?active=true")
                assert [a["labels"] for a in ours(alerts)] == [LABELS]
            finally:
                handle.stop()
        assert metrics.value("alertmanager", "sent") == 1
        assert metrics.value("alertmanager", "failed") == 0

    asyncio.run(scenario())


# --- webhooks -----------------------------------------------------------------------------


def test_a_webhook_that_fails_twice_gets_the_message_exactly_once() -> None:
    async def scenario() -> None:
        metrics = DeliveryMetrics.create(CollectorRegistry())
        event = gap_event()
        async with receiver(fail_first=2) as hook:
            notifier = WebhookNotifier([hook.url], policy=FAST, metrics=metrics)
            async with running(notifier):
                started = time.monotonic()
                await notifier.notify(event)
                assert time.monotonic() - started < 0.05
                assert await notifier.flush(timeout_s=10)
        assert hook.requests == 3
        assert hook.bodies == [webhook_message(event)]
        [body] = hook.bodies
        assert body["version"] == "4" and body["status"] == "firing"
        assert body["alerts"][0]["endsAt"] == "0001-01-01T00:00:00Z"
        assert metrics.value("webhook", "retried") == 2
        assert metrics.value("webhook", "sent") == 1

    asyncio.run(scenario())


def test_a_dead_webhook_fails_after_its_attempts_without_holding_up_the_others() -> None:
    async def scenario() -> None:
        metrics = DeliveryMetrics.create(CollectorRegistry())
        dead = f"http://127.0.0.1:{free_port()}/hook"
        policy = RetryPolicy(max_attempts=3, base_ms=50, cap_ms=100, timeout_s=2.0)
        async with receiver() as hook:
            notifier = WebhookNotifier([dead, hook.url], policy=policy, metrics=metrics)
            async with running(notifier):
                await notifier.notify(gap_event())
                await notifier.notify(resolve(gap_event()))
                assert await notifier.flush(timeout_s=10)
        assert [b["status"] for b in hook.bodies] == ["firing", "resolved"]
        assert metrics.value("webhook", "sent") == 2
        assert metrics.value("webhook", "retried") == 4  # 2 per message on the dead URL
        assert metrics.value("webhook", "failed") == 2

    asyncio.run(scenario())


def test_alertmanager_forwards_our_alert_to_a_webhook_in_our_own_shape(
    have_alertmanager: None,
) -> None:
    """End to end: Alertmanager's webhook messages for our pushed alert have exactly the
    fields, fingerprint and endsAt conventions of the messages we send ourselves."""

    async def scenario() -> None:
        event = gap_event()
        async with receiver() as hook:
            am = await asyncio.to_thread(start_alertmanager, webhook_url=hook.url)
            try:
                notifier = AlertmanagerNotifier([am.url], policy=FAST)
                async with running(notifier):
                    await notifier.notify(event)

                    async def bodies() -> list[dict[str, Any]]:
                        return list(hook.bodies)

                    [firing] = await eventually(bodies, lambda b: len(b) >= 1)
                    await notifier.notify(resolve(event))
                    resolved = (await eventually(bodies, lambda b: len(b) >= 2))[-1]
            finally:
                am.stop()

        mine = webhook_message(event)
        assert set(firing) == set(mine)
        assert firing["version"] == "4"
        assert firing["status"] == "firing"
        assert firing["truncatedAlerts"] == 0
        assert firing["groupKey"] == group_key(firing["groupLabels"])
        assert firing["groupLabels"] == {
            "alertname": "GapWidening",
            "icb": "QOP",
            "indicator": "emergency_admission_rate",
        }
        assert firing["commonLabels"] == LABELS
        assert firing["commonAnnotations"] == event.annotations
        [alert] = firing["alerts"]
        assert set(alert) == set(webhook_alert(event))
        assert alert["labels"] == LABELS
        assert alert["fingerprint"] == fingerprint(LABELS)
        assert alert["endsAt"] == "0001-01-01T00:00:00Z"
        assert alert["startsAt"].endswith("Z")
        assert resolved["status"] == "resolved"
        assert resolved["alerts"][0]["status"] == "resolved"
        assert resolved["alerts"][0]["endsAt"] != "0001-01-01T00:00:00Z"

    asyncio.run(scenario())
