"""The alerter against real Redis: a widening gap fires once, is served by the API
(list, SSE, series), survives a restart, resolves; unchanged days are not re-charted."""

from __future__ import annotations

import asyncio
import json
import random
import threading
import time
from collections.abc import Sequence
from typing import Any

import httpx
import pytest
import uvicorn

from gapwatch.adapters.alert_store import AlertStore
from gapwatch.adapters.redis_store import RedisStore
from gapwatch.alerting.metrics import AlerterMetrics
from gapwatch.alerting.service import Alerter
from gapwatch.api.app import create_app
from gapwatch.core.alert_events import AlertEvent
from gapwatch.core.refdata import ReferenceData
from gapwatch.core.windows import DAY_MS, HOUR_MS
from gapwatch.devstack.services import free_port
from gapwatch.settings import Settings
from tests.tokens import national_headers

pytestmark = pytest.mark.integration

# Today, on the wall clock: Redis expires day buckets 400 days after their day, by the
# wall clock, so a history set in the past would partly vanish as it is written.
TODAY = time.time_ns() // 1_000_000 // DAY_MS * DAY_MS
NOW = TODAY + 10 * HOUR_MS  # 10:00; with 1 h lateness yesterday is the latest closed day
DAYS = 60
WIDENED = 6  # the last 6 closed days climb
RETENTION = {"h": 8 * DAY_MS, "d": 400 * DAY_MS}
MEASURE = "admission_emergency"


class Recorder:
    name = "recorder"

    def __init__(self) -> None:
        self.events: list[AlertEvent] = []
        self.synced: list[list[str]] = []

    async def notify(self, event: AlertEvent) -> None:
        self.events.append(event)

    async def sync(self, firing: Sequence[AlertEvent], now_ms: int) -> None:
        self.synced.append([e.id for e in firing])

    async def close(self) -> None:
        return None


def _settings(redis_url: str, namespace: str) -> Settings:
    return Settings(
        redis={"url": redis_url, "namespace": namespace},
        alerts={
            "indicators": ("emergency_admission_rate",),
            "breakdowns": ("imd_quintile",),
            "history_periods": DAYS,
            "lateness_s": 3600,
            "settle_s": 0,
        },
    )


def _day_counts(rng: random.Random, day: int) -> dict[str, int]:
    """Emergency admissions by decile: about 40 a decile a day, the most deprived
    quintile (deciles 1-2) climbing by 35% of its level a day over the last days."""
    climb = max(0, day - (DAYS - WIDENED) + 1)
    counts = {}
    for d in range(1, 11):
        mean = 40.0 * (1 + 0.35 * climb if d <= 2 else 1.0)
        counts[f"{MEASURE}|imd_decile|{d}"] = _poisson(rng, mean)
    return counts


def _poisson(rng: random.Random, mean: float) -> int:
    # Normal approximation, plenty for means of 40 and more.
    return max(0, round(rng.gauss(mean, mean**0.5)))


async def _write(store: RedisStore, epoch: str, day_ms: int, fields: dict[str, int]) -> None:
    await store.apply("t", [], {("d", day_ms, "QOP"): fields}, {}, NOW, RETENTION, epoch=epoch)


async def _history(store: RedisStore, epoch: str) -> list[int]:
    rng = random.Random(7)
    days = [TODAY - (DAYS - i) * DAY_MS for i in range(DAYS)]
    for i, day in enumerate(days):
        await _write(store, epoch, day, _day_counts(rng, i))
    return days


def _alerter(
    settings: Settings, ref: ReferenceData, counts: RedisStore, store: AlertStore
) -> tuple[Alerter, Recorder, AlerterMetrics]:
    recorder, metrics = Recorder(), AlerterMetrics.create()
    return (
        Alerter(settings, ref, counts, store, [recorder], metrics, lambda: NOW),
        recorder,
        metrics,
    )


def test_a_widening_gap_fires_once_survives_a_restart_and_resolves(
    redis_url: str,
    namespace: str,
    tiny_ref: ReferenceData,
) -> None:
    settings = _settings(redis_url, namespace)

    async def scenario() -> None:
        counts = RedisStore.from_url(redis_url, namespace)
        store = AlertStore.from_url(redis_url, namespace)
        epoch, _ = await counts.adopt_epoch()
        days = await _history(counts, epoch)
        alerter, recorder, metrics = _alerter(settings, tiny_ref, counts, store)

        first = await alerter.run_once()
        assert first.icbs_evaluated == 1 and first.days_read == DAYS
        assert first.series_charted == 3  # difference, ratio, SII
        fired = {e.labels["measure"]: e for e in recorder.events}
        assert set(fired) == {"difference", "ratio", "sii"}, recorder.events
        diff = fired["difference"]
        assert diff.change == "new" and diff.state == "firing"
        assert diff.id == "gap:QOP:emergency_admission_rate:imd_quintile:difference"
        assert diff.labels["icb"] == "QOP" and diff.labels["alertname"] == "GapWidening"
        assert diff.detail["evidence"][-1]["point_type"] == "special_cause_concern"
        assert diff.detail["evidence"][-1]["period_start_ms"] == days[-1]
        gauge = metrics.registry.get_sample_value(
            "gapwatch_gap_alert",
            {
                "icb": "QOP",
                "indicator": "emergency_admission_rate",
                "breakdown": "imd_quintile",
                "measure": "difference",
            },
        )
        assert gauge == 1.0
        assert recorder.synced[-1] and diff.id in recorder.synced[-1]

        # Nothing changed: nothing is read or charted again, nothing re-delivered.
        again = await alerter.run_once()
        assert (again.icbs_evaluated, again.days_read, again.events) == (0, 0, ())

        # A late event on an old day re-charts that ICB only, without re-alerting.
        await _write(counts, epoch, days[3], {f"{MEASURE}|imd_decile|5": 1})
        late = await alerter.run_once()
        assert (late.icbs_evaluated, late.days_read, late.events) == (1, 1, ())

        # A restarted alerter knows what is firing: no second "new".
        restarted, recorder2, metrics2 = _alerter(settings, tiny_ref, counts, store)
        cycle = await restarted.run_once()
        assert cycle.icbs_evaluated == 1 and cycle.events == ()
        assert (
            metrics2.registry.get_sample_value(
                "gapwatch_gap_alert",
                {
                    "icb": "QOP",
                    "indicator": "emergency_admission_rate",
                    "breakdown": "imd_quintile",
                    "measure": "difference",
                },
            )
            == 1.0
        )

        # The least deprived catch up on the widened days: the gap closes and resolves.
        for day in days[-WIDENED:]:
            await _write(counts, epoch, day, {f"{MEASURE}|imd_decile|{d}": 400 for d in (9, 10)})
        # and the latest day returns to the middle of the process.
        await _write(
            counts,
            epoch,
            days[-1],
            {f"{MEASURE}|imd_decile|{d}": 10_000 for d in (3, 4, 5, 6, 7, 8, 9, 10)},
        )
        await restarted.run_once()
        resolved = {e.labels["measure"]: e.change for e in recorder2.events}
        assert resolved.get("difference") == "resolved", recorder2.events
        current = {e.id: e for e in await store.current()}
        assert current[diff.id].state == "resolved" and current[diff.id].ends_ms == NOW
        await counts.close()
        await store.close()

    asyncio.run(scenario())


class _Server:
    def __init__(self, app: Any) -> None:
        self.port = free_port()
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "API did not start"
            time.sleep(0.05)
        return f"http://127.0.0.1:{self.port}"

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def test_the_api_lists_streams_and_charts_what_the_alerter_decided(
    redis_url: str,
    namespace: str,
    tiny_ref: ReferenceData,
) -> None:
    settings = _settings(redis_url, namespace)
    loop = asyncio.new_event_loop()
    counts = RedisStore.from_url(redis_url, namespace)
    store = AlertStore.from_url(redis_url, namespace)
    epoch, _ = loop.run_until_complete(counts.adopt_epoch())
    days = loop.run_until_complete(_history(counts, epoch))
    alerter, _, _ = _alerter(settings, tiny_ref, counts, store)
    api_counts = RedisStore.from_url(redis_url, namespace)
    api_alerts = AlertStore.from_url(redis_url, namespace)

    async def close_api_clients() -> None:  # on the server's own loop
        await api_counts.close()
        await api_alerts.close()

    app = create_app(
        settings,
        api_counts,
        tiny_ref,
        clock_ms=lambda: NOW,
        days=api_counts,
        alerts=api_alerts,
        on_shutdown=close_api_clients,
    )
    received: list[tuple[str, dict[str, Any]]] = []
    # Issued at the app's clock (NOW, 10:00 today), which may be hours behind the wall's.
    headers = national_headers(now_s=NOW // 1000)
    with _Server(app) as base, httpx.Client(base_url=base, headers=headers, timeout=10) as client:
        # Subscribe first, then let the alerter decide: the change arrives over SSE.
        ready = threading.Event()

        def listen() -> None:
            with client.stream("GET", "/v1/alerts/stream", params={"icb": "QOP"}) as response:
                assert response.headers["content-type"].startswith("text/event-stream")
                ready.set()
                event = ""
                for line in response.iter_lines():
                    if line.startswith("event: "):
                        event = line[7:]
                    elif line.startswith("data: "):
                        received.append((event, json.loads(line[6:])))
                        if len(received) == 3:
                            return

        listener = threading.Thread(target=listen, daemon=True)
        listener.start()
        assert ready.wait(10)
        time.sleep(0.5)
        loop.run_until_complete(alerter.run_once())
        listener.join(15)
        assert sorted(d["measure"] for _, d in received) == ["difference", "ratio", "sii"]
        assert {e for e, _ in received} == {"new"}

        firing = client.get("/v1/alerts", params={"icb": "QOP", "state": "firing"}).json()
        assert {a["measure"] for a in firing} == {"difference", "ratio", "sii"}
        assert all(a["kind"] == "gap" and a["summary"] for a in firing)
        assert client.get("/v1/alerts", params={"state": "resolved"}).json() == []
        assert client.get("/v1/alerts", params={"icb": "XXX"}).status_code == 422
        one = client.get("/v1/alerts", params={"id": firing[0]["id"]}).json()
        assert [a["id"] for a in one] == [firing[0]["id"]]

        series = client.get(
            "/v1/icbs/QOP/indicators/emergency_admission_rate/series",
            params={"by": "imd_quintile", "measure": "difference", "points": DAYS},
        )
        assert series.status_code == 200, series.text
        body = series.json()
        assert body["improvement"] == "decrease" and body["period"] == "day"
        assert [p["period_start"][:10] for p in body["points"]][-1] == time.strftime(
            "%Y-%m-%d", time.gmtime(days[-1] / 1000)
        )
        assert len(body["points"]) == DAYS and body["missing"] == []
        assert body["points"][-1]["point_type"] == "special_cause_concern"
        # The climb lifts the mean, so stable days may read as a run below it
        # (improvement), never as a concern.
        assert all(p["point_type"] != "special_cause_concern" for p in body["points"][:40])
        assert body["points"][-1]["rule"] in ("Above UCL", "7 Point Trend (Increasing)")
        assert body["open_period"]["period_start"].startswith(
            time.strftime("%Y-%m-%d", time.gmtime(TODAY / 1000))
        )
        bad = client.get(
            "/v1/icbs/QOP/indicators/emergency_admission_rate/series",
            params={"by": "ethnic_group", "measure": "sii"},
        )
        assert bad.status_code == 422 and "sii" in bad.json()["detail"]
        no_group = client.get(
            "/v1/icbs/QOP/indicators/emergency_admission_rate/series",
            params={"by": "ethnic_group", "measure": "ratio"},
        )
        assert no_group.status_code == 422 and "group=" in no_group.json()["detail"]
    for closer in (counts.close(), store.close()):
        loop.run_until_complete(closer)
    loop.close()


def test_a_trust_gone_quiet_raises_a_stale_feed_alert_and_clears_it(
    redis_url: str,
    namespace: str,
    tiny_ref: ReferenceData,
) -> None:
    settings = _settings(redis_url, namespace)
    # Freshness keys expire on the wall clock, so this test lives in the present.
    start = time.time_ns() // 1_000_000
    clock = [start]

    async def scenario() -> None:
        counts = RedisStore.from_url(redis_url, namespace)
        store = AlertStore.from_url(redis_url, namespace)
        epoch, _ = await counts.adopt_epoch()
        recorder, metrics = Recorder(), AlerterMetrics.create()
        alerter = Alerter(settings, tiny_ref, counts, store, [recorder], metrics, lambda: clock[0])

        async def receive(at: int, events: int) -> None:
            # A chunk from trust R0A written at `at` (freshness is on the wall clock).
            await counts.apply("t", [], {}, {"R0A": (at, events)}, at, RETENTION, epoch=epoch)

        await receive(start, 600)  # 600 events in this minute: usual gap 6 s
        assert (await alerter.run_once()).events == ()
        clock[0] = start + 14 * 60_000  # quiet, but under the 15-minute floor
        assert (await alerter.run_once()).events == ()
        clock[0] = start + 16 * 60_000
        (stale,) = (await alerter.run_once()).events
        assert (stale.id, stale.change, stale.state) == ("feed:R0A", "new", "firing")
        assert stale.labels == {
            "alertname": "FeedStale",
            "severity": "warning",
            "trust": "R0A",
            "icb": "QOP",
        }
        assert (
            metrics.registry.get_sample_value("gapwatch_feed_stale", {"trust": "R0A", "icb": "QOP"})
            == 1.0
        )
        await receive(clock[0], 5)
        (back,) = (await alerter.run_once()).events
        assert (back.id, back.change) == ("feed:R0A", "resolved")
        await counts.close()
        await store.close()

    asyncio.run(scenario())


def test_an_icb_is_recharted_only_once_its_days_stop_changing(
    redis_url: str,
    namespace: str,
    tiny_ref: ReferenceData,
) -> None:
    settings = _settings(redis_url, namespace)
    settings = settings.model_copy(
        update={"alerts": settings.alerts.model_copy(update={"settle_s": 30.0})}
    )
    clock = [NOW]

    async def scenario() -> None:
        counts = RedisStore.from_url(redis_url, namespace)
        store = AlertStore.from_url(redis_url, namespace)
        epoch, _ = await counts.adopt_epoch()
        days = await _history(counts, epoch)
        recorder, metrics = Recorder(), AlerterMetrics.create()
        alerter = Alerter(settings, tiny_ref, counts, store, [recorder], metrics, lambda: clock[0])
        # History already in place at start is judged at once.
        assert (await alerter.run_once()).icbs_evaluated == 1
        # History still arriving (a backfill): wait for 30 s of quiet.
        await _write(counts, epoch, days[10], {f"{MEASURE}|imd_decile|3": 5})
        clock[0] += 10_000
        assert (await alerter.run_once()).icbs_evaluated == 0
        await _write(counts, epoch, days[11], {f"{MEASURE}|imd_decile|3": 5})
        clock[0] += 25_000  # the second write is seen now: 30 s from here
        assert (await alerter.run_once()).icbs_evaluated == 0
        clock[0] += 29_000
        assert (await alerter.run_once()).icbs_evaluated == 0
        clock[0] += 1_000
        cycle = await alerter.run_once()
        assert cycle.icbs_evaluated == 1 and cycle.days_read == 0
        await counts.close()
        await store.close()

    asyncio.run(scenario())
