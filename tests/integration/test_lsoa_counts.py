"""Per-LSOA day counts through the ingest processor, the atomic apply and a real Redis,
read back by ``lsoa_counts`` and by the LSOA endpoint; and the real reference data's
LSOA populations and districts."""

from __future__ import annotations

import asyncio
import dataclasses
import time

import pytest
import redis
from fastapi.testclient import TestClient

from gapwatch.adapters.metrics import IngestMetrics
from gapwatch.adapters.redis_store import RedisStore
from gapwatch.api.app import create_app
from gapwatch.core.counting import ENGLAND, LSOA_DAY
from gapwatch.core.refdata import Area, LsoaPopulation
from gapwatch.core.small_areas import lad_profiles
from gapwatch.core.validation import Limits
from gapwatch.core.windows import DAY_MS, HOUR_MS, Bucket
from gapwatch.ingest.dedup import SeenIds
from gapwatch.ingest.processor import ChunkProcessor, InMessage
from gapwatch.ingest.sink import IngestSink
from gapwatch.settings import Settings
from tests.tokens import national_headers

pytestmark = pytest.mark.integration

NOW = time.time_ns() // 1_000_000
TODAY = NOW - NOW % DAY_MS
HOUR = NOW - NOW % HOUR_MS
RETENTION = {"h": 8 * DAY_MS, "d": 400 * DAY_MS}


class NoDLQ:
    async def publish(self, letters):
        assert not letters, f"unexpected dead letters: {letters}"


def _events(make_event):
    at = NOW - 60_000
    out = [make_event(occurred_at=at, lsoa_code="E01000101") for _ in range(12)]
    # A split 2011 code resolves to its 2021 part; a postcode to its LSOA.
    out += [
        make_event(
            occurred_at=at,
            event_type="admission",
            dataset="APC",
            admission_method="21",
            age_years=10,
            lsoa_code="E01099999",
        )
        for _ in range(3)
    ]
    out += [make_event(occurred_at=at, lsoa_code=None, postcode="M15 4AB") for _ in range(2)]
    out.append(make_event(occurred_at=at, lsoa_code=None, postcode=None))  # no LSOA
    out.append(make_event(occurred_at=at, event_type="ed_departure", minutes_in_department=30))
    return out


async def _ingest(codec, ref, store, events):
    processor = ChunkProcessor(
        codec, ref, Limits(400 * DAY_MS, 900_000), 8 * DAY_MS, SeenIds(8 * DAY_MS)
    )
    sink = IngestSink(
        topic="t",
        processor=processor,
        store=store,
        dead_letters=NoDLQ(),
        metrics=IngestMetrics.create(),
        clock_ms=lambda: NOW,
        retention_ms=RETENTION,
        max_attempts=10,
    )
    await sink.handle([InMessage(0, 0, NOW, codec.encode_batch(events))])
    await sink.drain()


def test_rate_numerators_are_counted_per_lsoa_in_redis(
    redis_url, namespace, codec, tiny_ref, make_event
):
    async def scenario():
        store = RedisStore.from_url(redis_url, namespace)
        await _ingest(codec, tiny_ref, store, _events(make_event))
        found = {
            m: await store.lsoa_counts("QOP", [TODAY], m)
            for m in ("ed_arrival", "admission_emergency", "admission_emergency_u18", "events")
        }
        found["england"] = await store.lsoa_counts(ENGLAND, [TODAY], "ed_arrival")
        totals = await store.sum_counts(["QOP"], [Bucket("d", TODAY), Bucket("h", HOUR)])
        client = redis.Redis.from_url(redis_url, decode_responses=True)
        ttl = client.pttl(store.counts_key(LSOA_DAY, TODAY, "QOP"))
        await store.close()
        return found, totals, ttl

    found, totals, ttl = asyncio.run(scenario())
    assert found["ed_arrival"] == {"E01000101": 12, "E01000103": 2}
    assert found["admission_emergency"] == {"E01000102": 3}
    assert found["admission_emergency_u18"] == {"E01000102": 3}
    assert found["events"] == {}, "only rate numerators are counted per LSOA"
    assert found["england"] == {}
    # The per-LSOA fields stay out of the hashes every indicator read sums.
    assert not any("|lsoa|" in name for name in totals)
    assert totals["ed_arrival|imd_decile|unknown"] == 2  # day + hour: residence unknown
    # Kept as long as day buckets.
    assert 399 * DAY_MS < ttl <= 401 * DAY_MS


def test_lsoa_counts_follow_the_scan_cursor_over_big_hashes(redis_url, namespace):
    store = RedisStore.from_url(redis_url, namespace)
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    key = store.counts_key(LSOA_DAY, TODAY, "QOP")
    fields = {f"ed_arrival|lsoa|E{i:08d}": 1 for i in range(30_000)}
    fields.update({f"events|sex|g{i}": 5 for i in range(5_000)})
    for start in range(0, len(fields), 5_000):
        client.hset(key, mapping=dict(list(fields.items())[start : start + 5_000]))
    client.hset(store.counts_key(LSOA_DAY, TODAY + DAY_MS, "QOP"), "ed_arrival|lsoa|E00000007", 4)

    async def read():
        try:
            return await store.lsoa_counts(
                "QOP", [TODAY, TODAY + DAY_MS, TODAY - DAY_MS], "ed_arrival"
            )
        finally:
            await store.close()

    found = asyncio.run(read())
    assert len(found) == 30_000
    assert found["E00000007"] == 5
    assert sum(found.values()) == 30_004


def test_the_lsoa_endpoint_reads_real_redis(redis_url, namespace, codec, tiny_ref, make_event):
    ref = dataclasses.replace(
        tiny_ref,
        areas={**tiny_ref.areas, "E01000101": Area("E01000101", "QOP", 10, 1, 1, "E08000009")},
        lads={"E08000009": "Trafford"},
        lsoa_population=LsoaPopulation.build({"E01000101": [100.0] * 6}),
    )

    async def ingest():
        store = RedisStore.from_url(redis_url, namespace)
        await _ingest(codec, ref, store, _events(make_event))
        await store.close()

    asyncio.run(ingest())
    app = create_app(
        Settings(api={"versions_max_age_ms": 0}),
        RedisStore.from_url(redis_url, namespace),
        ref,
        clock_ms=lambda: NOW,
    )
    # Issued at the app's clock: NOW was read when the module was imported, maybe minutes
    # before this test runs, and a token from the app's future is refused.
    with TestClient(app, headers=national_headers(now_s=NOW // 1000)) as client:
        body = client.get("/v1/icbs/QOP/lsoas?window=7d&limit=200").json()
    top = body["lsoas"][0]
    assert (top["lsoa"], top["numerator"], top["numerator_display"]) == ("E01000101", 10, "10")
    assert (top["lad"], top["lad_name"], top["population"]) == ("E08000009", "Trafford", 600)
    shown = {r["lsoa"]: r["numerator_display"] for r in body["lsoas"]}
    assert shown == {
        "E01000101": "10",
        "E01000102": "0",
        "E01000103": "*",
        "E01000104": "0",
        "E01000105": "0",
    }  # 12 arrivals -> 10, 2 arrivals -> *


def test_real_reference_data_has_lsoa_populations_and_districts(real_ref):
    areas = {c: a for c, a in real_ref.areas.items() if c == a.lsoa21}
    assert len(areas) == 33_755
    assert all(a.lad.startswith("E0") for a in areas.values())
    assert len(real_ref.lads) == len({a.lad for a in areas.values()})
    # The same people as the ICB tables, LSOA by LSOA (England, mid-2019).
    per_lsoa = sum(real_ref.lsoa_population.of(c) or 0.0 for c in areas)
    cells = real_ref.population.cells
    assert per_lsoa == pytest.approx(sum(sum(v.values()) for v in cells.values()), rel=1e-9)
    assert per_lsoa == pytest.approx(56_286_961, rel=1e-6)
    under_18 = frozenset({"0-4", "5-17"})
    code = next(iter(areas))
    children = real_ref.lsoa_population.of(code, under_18) or 0.0
    assert 0 < children < (real_ref.lsoa_population.of(code) or 0.0)
    lads = lad_profiles(real_ref)
    assert len(lads) == len(real_ref.lads)
    assert all(0.0 <= p.affluent_share <= 1.0 for p in lads.values())
    # Roughly 40% of England lives in quintiles 4-5, so some districts are mostly
    # affluent and most are not.
    mostly = sum(p.mostly_affluent for p in lads.values())
    assert 0 < mostly < len(lads) / 2
