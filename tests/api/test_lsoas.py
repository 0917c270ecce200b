"""GET /v1/icbs/{icb}/lsoas over an in-memory store: ranking, disclosure control, flag."""

from __future__ import annotations

import dataclasses

import pytest
from fastapi.testclient import TestClient

from gapwatch.api.app import create_app
from gapwatch.core.enrich import Profile
from gapwatch.core.refdata import Area, LsoaPopulation, ReferenceData
from gapwatch.core.windows import DAY_MS, HOUR_MS
from gapwatch.settings import Settings
from tests.api.conftest import NATIONAL, NOW, MemoryStore
from tests.conftest import tiny_reference_data

TRAFFORD, MANCHESTER = "E08000009", "E08000003"
# code: (IMD quintile, decile, LAD, people per age band 0-4, 5-17, 18-39, 40-64, 65-79, 80+)
AREAS = {
    "E01000101": (1, 1, TRAFFORD, (100, 200, 300, 200, 150, 50)),  # 1,000; 300 under 18
    "E01000102": (2, 3, MANCHESTER, (50, 50, 200, 100, 50, 50)),  # 500
    "E01000103": (3, 5, MANCHESTER, (10, 10, 40, 20, 10, 10)),  # 100
    "E01000104": (4, 7, TRAFFORD, (200, 200, 600, 600, 300, 100)),  # 2,000
    "E01000105": (5, 9, TRAFFORD, (200, 200, 600, 600, 300, 100)),  # 2,000
    "E01000106": (1, 2, MANCHESTER, (300, 300, 900, 900, 450, 150)),  # 3,000
}
ED_ARRIVALS = {
    "E01000101": 40,
    "E01000102": 12,
    "E01000103": 5,
    "E01000104": 0,
    "E01000105": 8,
    "E01000106": 23,
}
FIELDS = {
    "lsoa",
    "lad",
    "lad_name",
    "imd_decile",
    "imd_quintile",
    "numerator",
    "numerator_display",
    "population",
    "rate",
    "lower95",
    "upper95",
    "deprived_in_affluent_place",
}


def small_area_ref() -> ReferenceData:
    base = tiny_reference_data()
    areas = dict(base.areas)
    for code, (q, d, lad, _) in AREAS.items():
        areas[code] = Area(code, "QOP", 1000 * d, d, q, lad)
    return dataclasses.replace(
        base,
        areas=areas,
        lads={TRAFFORD: "Trafford", MANCHESTER: "Manchester"},
        lsoa_population=LsoaPopulation.build(
            {code: [float(n) for n in people] for code, (*_, people) in AREAS.items()}
        ),
    )


def resident(code: str, age_band: str = "18-39") -> Profile:
    q, d, _, _ = AREAS[code]
    return Profile("QOP", str(q), str(d), "white", age_band, "female", (), "30-34", code)


@pytest.fixture()
def lsoa_client(store: MemoryStore) -> TestClient:
    app = create_app(
        Settings(api={"versions_max_age_ms": 0}),
        store,
        small_area_ref(),
        clock_ms=lambda: NOW,
        broker_check=lambda: True,
    )
    return TestClient(app, headers=NATIONAL)


@pytest.fixture()
def arrivals(store: MemoryStore) -> MemoryStore:
    for code, n in ED_ARRIVALS.items():
        for i in range(n):
            # Spread over the last three weeks (day buckets), all inside a 28d window.
            store.add(NOW - (i % 21) * DAY_MS - HOUR_MS, resident(code), ("ed_arrival",))
    return store


def test_lsoas_are_ranked_by_published_rate_with_controlled_counts(lsoa_client, arrivals):
    response = lsoa_client.get("/v1/icbs/QOP/lsoas?indicator=ed_attendance_rate&window=28d")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"icb", "icb_name", "indicator", "title", "window", "disclosure", "lsoas"}
    assert (body["icb"], body["icb_name"]) == ("QOP", "NHS Greater Manchester ICB")
    assert body["indicator"] == "ed_attendance_rate" and body["title"] == "A&E attendance rate"
    # Day buckets only: the window widens to whole UTC days.
    assert body["window"]["start"] == "2024-09-06T00:00:00Z"
    assert body["window"]["end"] == "2024-10-05T00:00:00Z"
    assert body["window"]["requested"] == "28d"
    assert "1 to 7" in body["disclosure"] and "nearest 5" in body["disclosure"]

    rows = body["lsoas"]
    assert all(set(r) == FIELDS for r in rows)
    # 40/1000, 10/500, 25/3000, 10/2000, 0/2000, then the suppressed one (5 -> *).
    assert [r["lsoa"] for r in rows] == [
        "E01000101",
        "E01000102",
        "E01000106",
        "E01000105",
        "E01000104",
        "E01000103",
    ]
    assert [r["numerator_display"] for r in rows] == ["40", "10", "25", "10", "0", "*"]
    assert [r["numerator"] for r in rows] == [40, 10, 25, 10, 0, None]

    years = body["window"]["days"] / 365.25
    top = rows[0]
    assert top["population"] == 1000
    assert top["rate"] == pytest.approx(40 / (1000 * years) * 100_000)
    assert top["lower95"] < top["rate"] < top["upper95"]
    # 12 events are published as 10, and the rate comes from the published 10.
    assert rows[1]["rate"] == pytest.approx(10 / (500 * years) * 100_000)
    assert rows[4]["rate"] == 0 and rows[4]["lower95"] == 0
    hidden = rows[5]
    assert hidden["rate"] is None and hidden["lower95"] is None and hidden["upper95"] is None
    assert hidden["population"] == 100 and hidden["imd_quintile"] == 3


def test_deprived_lsoas_in_mostly_affluent_districts_are_flagged(lsoa_client, arrivals):
    rows = lsoa_client.get("/v1/icbs/QOP/lsoas").json()["lsoas"]
    by_code = {r["lsoa"]: r for r in rows}
    # Trafford: 4,000 of its 5,000 residents live in quintiles 4-5.
    assert by_code["E01000101"]["deprived_in_affluent_place"] is True
    assert (by_code["E01000101"]["lad"], by_code["E01000101"]["lad_name"]) == (
        TRAFFORD,
        "Trafford",
    )
    # Quintile 1 too, but Manchester's residents here are all in quintiles 1-3.
    assert by_code["E01000106"]["deprived_in_affluent_place"] is False
    assert by_code["E01000106"]["lad_name"] == "Manchester"
    # Affluent districts' own affluent LSOAs are not pockets of deprivation.
    assert by_code["E01000105"]["deprived_in_affluent_place"] is False


def test_limit_keeps_the_top_of_the_ranking(lsoa_client, arrivals):
    rows = lsoa_client.get("/v1/icbs/QOP/lsoas?limit=2").json()["lsoas"]
    assert [r["lsoa"] for r in rows] == ["E01000101", "E01000102"]


def test_under_18_rates_divide_by_children_only(lsoa_client, store):
    for i in range(10):
        store.add(
            NOW - i * DAY_MS,
            resident("E01000101", "5-17"),
            ("admission", "admission_emergency", "admission_emergency_u18"),
        )
    body = lsoa_client.get("/v1/icbs/QOP/lsoas?indicator=emergency_admission_rate_u18").json()
    top = body["lsoas"][0]
    assert (top["lsoa"], top["numerator"], top["population"]) == ("E01000101", 10, 300)
    years = body["window"]["days"] / 365.25
    assert top["rate"] == pytest.approx(10 / (300 * years) * 100_000)
    everyone = lsoa_client.get("/v1/icbs/QOP/lsoas?indicator=emergency_admission_rate").json()
    assert everyone["lsoas"][0]["population"] == 1000


def test_events_outside_the_window_are_not_counted(lsoa_client, store):
    for _ in range(20):
        store.add(NOW - 40 * DAY_MS, resident("E01000104"), ("ed_arrival",))
    for _ in range(9):
        store.add(NOW - 3 * DAY_MS, resident("E01000104"), ("ed_arrival",))
    rows = lsoa_client.get("/v1/icbs/QOP/lsoas?window=7d").json()["lsoas"]
    assert rows[0]["lsoa"] == "E01000104" and rows[0]["numerator_display"] == "10"


@pytest.mark.parametrize(
    ("url", "status", "message"),
    [
        ("/v1/icbs/QOP/lsoas?indicator=outpatient_dna_proportion", 422, "ed_attendance_rate"),
        ("/v1/icbs/QOP/lsoas?indicator=nope", 422, "emergency_admission_rate_u18"),
        ("/v1/icbs/QXX/lsoas", 404, "unknown ICB"),
        ("/v1/icbs/QOP/lsoas?window=1x", 422, "window"),
        ("/v1/icbs/QOP/lsoas?limit=0", 422, None),
        ("/v1/icbs/QOP/lsoas?limit=201", 422, None),
    ],
)
def test_bad_requests_get_a_clear_message(lsoa_client, url, status, message):
    response = lsoa_client.get(url)
    assert response.status_code == status
    if message is not None:
        assert message in response.json()["detail"]


def test_ons_icb_codes_are_accepted(lsoa_client, arrivals):
    assert lsoa_client.get("/v1/icbs/E54000057/lsoas").json()["icb"] == "QOP"


def test_redis_down_gives_503(lsoa_client, store):
    store.down = True
    response = lsoa_client.get("/v1/icbs/QOP/lsoas")
    assert response.status_code == 503
    assert "unavailable" in response.json()["detail"]


def test_a_new_event_changes_the_cached_answer(lsoa_client, store):
    for _ in range(10):
        store.add(NOW - DAY_MS, resident("E01000102"), ("ed_arrival",))
    first = lsoa_client.get("/v1/icbs/QOP/lsoas").json()["lsoas"][0]
    assert (first["lsoa"], first["numerator"]) == ("E01000102", 10)
    for _ in range(10):
        store.add(NOW - DAY_MS, resident("E01000102"), ("ed_arrival",))
    again = lsoa_client.get("/v1/icbs/QOP/lsoas").json()["lsoas"][0]
    assert again["numerator"] == 20


def test_windows_longer_than_the_small_area_retention_are_refused(lsoa_client):
    response = lsoa_client.get("/v1/icbs/QOP/lsoas?window=90d")
    assert response.status_code == 422
    assert "kept 35 days" in response.json()["detail"]
    assert lsoa_client.get("/v1/icbs/QOP/lsoas?window=35d").status_code == 200
