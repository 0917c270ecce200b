"""Confidence limits, gaps, standardisation and benchmarks through the HTTP API.

Expected values are computed here from the published formulae (Wilson, Byar, exact
chi-squared, weighted least squares), not by calling the code under test.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from fastapi.testclient import TestClient
from scipy.stats import chi2

from gapwatch.api.app import create_app
from gapwatch.core.enrich import Profile
from gapwatch.core.refdata import PopulationTable, ReferenceData
from gapwatch.core.windows import DAY_MS, HOUR_MS
from gapwatch.settings import Settings
from tests.api.conftest import NATIONAL, NOW, MemoryStore, profile

Z95 = 1.959963984540054
# People per IMD quintile in QOP (deliberately unequal, so the SII weights matter).
QUINTILE_PEOPLE = {"1": 10_000.0, "2": 12_000.0, "3": 15_000.0, "4": 9_000.0, "5": 14_000.0}
ARRIVALS = {"1": 50, "2": 40, "3": 30, "4": 25, "5": 20}


def _reference(tiny: ReferenceData) -> ReferenceData:
    cells: dict[tuple[str, str, str, str], float] = {}
    for q, people in QUINTILE_PEOPLE.items():
        for decile in (str(2 * int(q) - 1), str(2 * int(q))):
            # Half the quintile in each decile, all aged 30-34, split by sex.
            cells[(decile, "female", "18-39", "30-34")] = people / 4
            cells[(decile, "male", "18-39", "30-34")] = people / 4
    other = {icb: c for icb, c in tiny.population.cells.items() if icb != "QOP"}
    return dataclasses.replace(
        tiny, population=PopulationTable({"QOP": cells, **other}, tiny.population.ethnic)
    )


@pytest.fixture()
def ref(tiny_ref: ReferenceData) -> ReferenceData:
    return _reference(tiny_ref)


@pytest.fixture()
def api(store: MemoryStore, ref: ReferenceData) -> TestClient:
    settings = Settings(api={"sii_repetitions": 20_000, "versions_max_age_ms": 0})
    return TestClient(create_app(settings, store, ref, clock_ms=lambda: NOW), headers=NATIONAL)


def _arrive(store: MemoryStore) -> None:
    for q, n in ARRIVALS.items():
        for i in range(n):
            p = Profile("QOP", q, str(2 * int(q)), "white", "18-39", "female", (), "30-34")
            store.add(NOW - (i % 20 + 1) * DAY_MS // 2, p, ("ed_arrival",))


def _byar(o: float, z: float = Z95) -> tuple[float, float]:
    lower = o * (1 - 1 / (9 * o) - z / (3 * math.sqrt(o))) ** 3
    upper = (o + 1) * (1 - 1 / (9 * (o + 1)) + z / (3 * math.sqrt(o + 1))) ** 3
    return lower, upper


def _wls(values: list[float], people: list[float]) -> tuple[float, float]:
    """Intercept and slope of values on cumulative population rank midpoints, weighted by
    population share: PHE's SII regression, solved directly."""
    a = np.array(people) / sum(people)
    b = np.cumsum(a) - a / 2
    design = np.column_stack([np.sqrt(a), b * np.sqrt(a)])
    (b0, b1), *_ = np.linalg.lstsq(design, np.sqrt(a) * np.array(values), rcond=None)
    return float(b0), float(b1)


def test_rate_limits_and_sii_rii_match_the_formulae(api, store):
    _arrive(store)
    body = api.get("/v1/icbs/QOP/indicators/ed_attendance_rate?window=28d").json()
    years = body["window"]["days"] / 365.25
    groups = {g["group"]: g for g in body["groups"]}
    values = []
    for q, n in ARRIVALS.items():
        person_years = QUINTILE_PEOPLE[q] * years
        lower, upper = _byar(n)
        g = groups[q]
        assert g["numerator"] == n
        assert g["value"] == pytest.approx(n / person_years * 1e5, rel=1e-12)
        assert g["lower95"] == pytest.approx(lower / person_years * 1e5, rel=1e-12)
        assert g["upper95"] == pytest.approx(upper / person_years * 1e5, rel=1e-12)
        assert g["method"] == "Byars"
        values.append(n / person_years * 1e5)
    b0, b1 = _wls(values, list(QUINTILE_PEOPLE.values()))
    gap = body["gap"]
    assert gap["kind"] == "imd" and gap["confidence"] == 0.95
    assert gap["sii"] == pytest.approx(b1, rel=1e-9)
    assert gap["rii"] == pytest.approx((b0 + b1) / b0, rel=1e-9)
    assert gap["sii"] < 0  # more arrivals in more deprived areas: PHE's sign convention
    assert gap["sii_lower"] < gap["sii"] < gap["sii_upper"]
    assert gap["rii_lower"] < gap["rii"] < gap["rii_upper"]
    assert gap["absolute"] == pytest.approx(values[0] - values[4], rel=1e-12)
    assert gap["ratio"] == pytest.approx(values[0] / values[4], rel=1e-12)
    assert gap["absolute_lower"] < gap["absolute"] < gap["absolute_upper"]
    assert gap["ratio_lower"] < gap["ratio"] < gap["ratio_upper"]
    assert any("phe_sii" in m for m in gap["method"])


def test_small_counts_use_exact_limits_and_zero_counts_keep_an_upper_limit(api, store):
    store.add(NOW - HOUR_MS, profile("1"), ("ed_arrival",))
    store.add(NOW - HOUR_MS, profile("1"), ("ed_arrival",))
    body = api.get("/v1/icbs/QOP/indicators/ed_attendance_rate?window=28d").json()
    years = body["window"]["days"] / 365.25
    q1, q2 = body["groups"][0], body["groups"][1]
    person_years = QUINTILE_PEOPLE["1"] * years
    assert q1["method"] == "Exact"
    assert q1["lower95"] == pytest.approx(chi2.ppf(0.025, 4) / 2 / person_years * 1e5)
    assert q1["upper95"] == pytest.approx(chi2.ppf(0.975, 6) / 2 / person_years * 1e5)
    assert q2["value"] == 0 and q2["lower95"] == 0
    assert q2["upper95"] == pytest.approx(-math.log(0.025) / (12_000 * years) * 1e5)
    # A quintile with no events has no log rate: the SII is reported missing, with why.
    assert body["gap"]["sii"] is None and "SII not computed" in body["gap"]["note"]


def test_proportion_limits_are_wilson_and_extra_confidence_levels_are_added(api, store):
    for i in range(30):
        measures = ("outpatient_outcome", "outpatient_dna") if i < 9 else ("outpatient_outcome",)
        store.add(NOW - HOUR_MS, profile("2", eth="black"), measures)
    body = api.get(
        "/v1/icbs/QOP/indicators/outpatient_dna_proportion?by=ethnic_group&window=24h"
        "&confidence=99.8"
    ).json()
    black = next(g for g in body["groups"] if g["group"] == "black")
    x, n = 9, 30
    for level, z in ((0.95, Z95), (0.998, 3.090232306167813)):
        spread = z * math.sqrt(z * z + 4 * x * (1 - x / n))
        lower = (2 * x + z * z - spread) / (2 * (n + z * z))
        upper = (2 * x + z * z + spread) / (2 * (n + z * z))
        interval = next(i for i in black["intervals"] if i["confidence"] == level)
        assert interval["lower"] == pytest.approx(lower, rel=1e-12)
        assert interval["upper"] == pytest.approx(upper, rel=1e-12)
    assert black["lower95"] == black["intervals"][0]["lower"]
    assert body["confidence"] == [0.95, 0.998]
    assert black["method"] == "Wilson"
    white = next(g for g in body["groups"] if g["group"] == "white")
    assert white["value"] is None  # no appointments: no proportion, not zero
    gap = body["gap"]
    assert gap["kind"] == "ethnic_group" and gap["reference"] == "white"
    compared = {c["group"]: c for c in gap["comparisons"]}
    assert set(compared) == {"mixed", "asian", "black", "other"}
    assert compared["black"]["difference"] is None  # reference group has no value


def test_bad_confidence_and_standardised_proportions_are_422(api):
    bad = api.get("/v1/icbs/QOP/indicators/ed_attendance_rate?confidence=50")
    assert bad.status_code == 422 and "confidence level" in bad.json()["detail"]
    full = api.get("/v1/icbs/QOP/indicators/ed_attendance_rate?confidence=100")
    assert full.status_code == 422 and "below 1" in full.json()["detail"]
    prop = api.get("/v1/icbs/QOP/indicators/outpatient_dna_proportion?standardised=true")
    assert prop.status_code == 422 and "age-standardised" in prop.json()["detail"]


def test_standardised_rates_are_dobson_dsrs(api, store):
    _arrive(store)
    body = api.get("/v1/icbs/QOP/indicators/ed_attendance_rate?window=28d&standardised=true").json()
    assert body["standardised"] is True
    # ESP2013 counts live in day buckets: the window widens to whole UTC days.
    assert body["window"]["start"].endswith("T00:00:00Z")
    assert body["window"]["end"].endswith("T00:00:00Z")
    years = body["window"]["days"] / 365.25
    q1 = body["groups"][0]
    # One ESP band (30-34) holds everyone, so the DSR equals the crude rate and its
    # Dobson limits reduce to the Byar limits of the count.
    person_years = QUINTILE_PEOPLE["1"] * years
    assert q1["value"] == pytest.approx(50 / person_years * 1e5, rel=1e-9)
    lower, upper = _byar(50)
    assert q1["lower95"] == pytest.approx(lower / person_years * 1e5, rel=1e-9)
    assert q1["upper95"] == pytest.approx(upper / person_years * 1e5, rel=1e-9)
    assert q1["method"] == "Dobson"
    assert "European Standard Population" in body["method"]
    assert body["gap"]["sii"] is not None
    by_eth = api.get(
        "/v1/icbs/QOP/indicators/ed_attendance_rate?by=ethnic_group&standardised=true"
    ).json()
    assert all(g["value"] is None for g in by_eth["groups"])
    assert "no age-specific population" in by_eth["groups"][0]["note"]


def test_fewer_than_ten_events_suppress_the_dsr(api, store):
    for _ in range(9):
        store.add(
            NOW - HOUR_MS,
            Profile("QOP", "1", "1", "white", "18-39", "male", (), "30-34"),
            ("ed_arrival",),
        )
    body = api.get("/v1/icbs/QOP/indicators/ed_attendance_rate?standardised=true").json()
    assert body["groups"][0]["numerator"] == 9
    assert body["groups"][0]["value"] is None


def test_england_and_region_comparators(api, store):
    _arrive(store)
    for _ in range(5):  # and a few in QHL (Birmingham, region Midlands)
        store.add(
            NOW - HOUR_MS, Profile("QHL", "1", "1", "white", "18-39", "female", ()), ("ed_arrival",)
        )
    england = api.get("/v1/england/indicators/ed_attendance_rate?window=28d").json()
    assert england["area_type"] == "england" and england["area"] == "E92000001"
    assert england["total"]["numerator"] == sum(ARRIVALS.values()) + 5
    assert england["benchmark"] is None
    icb = api.get("/v1/icbs/QOP/indicators/ed_attendance_rate?window=28d").json()
    bench = icb["benchmark"]
    assert bench["area"] == "England"
    assert bench["value"] == pytest.approx(england["total"]["value"])
    assert bench["significance"] in (
        "High (0.001)",
        "High (0.025)",
        "Low (0.001)",
        "Low (0.025)",
        "Not significant",
    )
    assert bench["assessment"] in ("better", "similar", "worse")
    region = api.get("/v1/regions/Y62/indicators/ed_attendance_rate?window=28d").json()
    assert region["area_type"] == "region" and region["area_name"] == "North West"
    assert region["total"]["numerator"] == sum(ARRIVALS.values())
    assert api.get("/v1/regions/XYZ/indicators/ed_attendance_rate").status_code == 404


def test_a_worse_area_is_flagged_against_england(store, tiny_ref):
    # QOP: 400 arrivals on 60,000 people; QHL: 2 on 200,000. England's rate is ~155 per
    # 100,000 per day, so QOP (~667) is far above it and QHL (1) far below.
    ref = _reference(tiny_ref)
    cells = dict(ref.population.cells)
    cells["QHL"] = {("1", "female", "18-39", "20-24"): 200_000.0}
    ref = dataclasses.replace(ref, population=PopulationTable(cells, ref.population.ethnic))
    for _ in range(400):
        store.add(NOW - HOUR_MS, profile("1"), ("ed_arrival",))
    for _ in range(2):
        store.add(
            NOW - HOUR_MS, Profile("QHL", "1", "1", "white", "18-39", "female", ()), ("ed_arrival",)
        )
    api = TestClient(
        create_app(Settings(api={"versions_max_age_ms": 0}), store, ref, clock_ms=lambda: NOW),
        headers=NATIONAL,
    )
    body = api.get("/v1/icbs/QOP/indicators/ed_attendance_rate?window=24h").json()
    assert body["benchmark"]["significance"].startswith("High")
    assert body["benchmark"]["assessment"] == "worse"  # lower is better for A&E attendance
    qhl = api.get("/v1/icbs/QHL/indicators/ed_attendance_rate?window=24h").json()
    assert qhl["benchmark"]["assessment"] == "better"


def test_repeated_queries_are_served_from_cache_until_a_bucket_changes(api, store):
    _arrive(store)
    url = "/v1/icbs/QOP/indicators/ed_attendance_rate?window=28d"
    first = api.get(url).content
    sums = api.app.state.ctx.sums
    misses = sums.misses
    assert api.get(url).content == first
    assert sums.misses == misses  # nothing re-read: every bucket version was unchanged
    store.add(NOW - HOUR_MS, profile("1"), ("ed_arrival",))
    after = api.get(url).json()
    assert sums.misses == misses + 2  # QOP's window and England's window
    assert after["total"]["numerator"] == sum(ARRIVALS.values()) + 1
