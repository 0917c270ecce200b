"""The HTTP API over an in-memory store: shapes, values and errors."""

from __future__ import annotations

import pytest

from gapwatch.core.windows import HOUR_MS
from tests.api.conftest import NOW, profile


def test_health_and_readiness(client, store):
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").status_code == 200
    store.down = True
    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json() == {"redis": False, "kafka": True}


def test_catalogue_lists_indicators_with_breakdowns(client):
    body = client.get("/v1/indicators").json()
    by_id = {i["id"]: i for i in body}
    rate = by_id["ed_attendance_rate"]
    assert rate["kind"] == "rate" and rate["unit"] == "per 100,000 population per year"
    assert rate["improvement"] == "lower"
    groups = {b["id"]: b["groups"] for b in rate["breakdowns"]}
    assert groups["imd_quintile"] == ["1", "2", "3", "4", "5", "unknown"]
    assert groups["ethnic_group"] == ["white", "mixed", "asian", "black", "other", "unknown"]
    assert by_id["outpatient_dna_proportion"]["kind"] == "proportion"


def test_icbs_list_ods_and_ons_codes(client):
    body = client.get("/v1/icbs").json()
    assert body[1] == {
        "ods_code": "QOP",
        "ons_code": "E54000057",
        "name": "NHS Greater Manchester ICB",
        "region_ods_code": "Y62",
        "region_name": "North West",
    }


def test_counts_in_the_window_are_summed_by_group(client, store):
    store.add(NOW - 2 * HOUR_MS, profile("1"), ("ed_arrival",))
    store.add(NOW - 3 * HOUR_MS, profile("1"), ("ed_arrival",))
    store.add(NOW - 5 * HOUR_MS, profile("5"), ("ed_arrival",))
    store.add(NOW - 30 * HOUR_MS, profile("5"), ("ed_arrival",))  # outside 24h
    body = client.get("/v1/icbs/QOP/indicators/ed_attendance_rate?window=24h").json()
    assert body["window"]["start"] == "2024-10-03T11:00:00Z"
    assert body["window"]["end"] == "2024-10-04T11:00:00Z"
    numerators = {g["group"]: g["numerator"] for g in body["groups"]}
    assert numerators == {"1": 2, "2": 0, "3": 0, "4": 0, "5": 1, "unknown": 0}
    assert body["total"]["numerator"] == 3
    q1 = body["groups"][0]
    # 23.5 hours have elapsed; rates count elapsed time in steps of a thousandth of the
    # window in whole seconds (86 s for 24 h): at most one step short of that.
    days = body["window"]["days"]
    assert 23.5 / 24 - 86 / 86400 < days <= 23.5 / 24
    elapsed_years = days / 365.25
    assert q1["value"] == pytest.approx(2 / (12_000 * elapsed_years) * 100_000)
    assert body["imd_edition"] == "IoD2025"
    week = client.get("/v1/icbs/QOP/indicators/ed_attendance_rate?window=7d").json()
    assert week["total"]["numerator"] == 4


def test_ons_codes_are_accepted_for_the_icb(client, store):
    store.add(NOW - HOUR_MS, profile("2"), ("ed_arrival",))
    body = client.get("/v1/icbs/E54000057/indicators/ed_attendance_rate?window=24h").json()
    assert body["icb"] == "QOP"
    assert body["total"]["numerator"] == 1


def test_proportions_by_ethnic_group(client, store):
    for status_measures, eth in [
        (("outpatient_outcome", "outpatient_dna"), "black"),
        (("outpatient_outcome",), "black"),
        (("outpatient_outcome",), "white"),
    ]:
        store.add(NOW - HOUR_MS, profile("3", eth), status_measures)
    body = client.get(
        "/v1/icbs/QOP/indicators/outpatient_dna_proportion?by=ethnic_group&window=24h"
    ).json()
    values = {g["group"]: g["value"] for g in body["groups"]}
    assert values["black"] == 0.5 and values["white"] == 0.0 and values["asian"] is None
    assert body["total"]["value"] == pytest.approx(1 / 3)


def test_explicit_start_and_end(client, store):
    store.add(NOW - 26 * HOUR_MS, profile("4"), ("ed_arrival",))
    start = "2024-10-02T00:00:00Z"
    body = client.get(
        f"/v1/icbs/QOP/indicators/ed_attendance_rate?start={start}&end=2024-10-04T00:00:00Z"
    ).json()
    assert body["window"]["days"] == 2.0
    assert body["total"]["numerator"] == 1


@pytest.mark.parametrize(
    ("url", "status", "message"),
    [
        ("/v1/icbs/XXX/indicators/ed_attendance_rate", 404, "unknown ICB"),
        ("/v1/icbs/QOP/indicators/nope", 404, "unknown indicator"),
        ("/v1/icbs/QOP/indicators/ed_attendance_rate?by=postcode", 422, "unknown breakdown"),
        ("/v1/icbs/QOP/indicators/ed_attendance_rate?window=3w", 422, "window must look like"),
        ("/v1/icbs/QOP/indicators/ed_attendance_rate?start=2024-01-01", 422, "both start and end"),
        ("/v1/icbs/QOP/indicators/ed_attendance_rate?start=yesterday&end=today", 422, "bad start"),
        (
            "/v1/icbs/QOP/indicators/ed_attendance_rate?start=2024-02-01&end=2024-01-01",
            422,
            "after its start",
        ),
    ],
)
def test_bad_requests_get_a_clear_message(client, url, status, message):
    response = client.get(url)
    assert response.status_code == status
    assert message in response.json()["detail"]


def test_redis_down_gives_503_with_a_message(client, store):
    store.down = True
    response = client.get("/v1/icbs/QOP/indicators/ed_attendance_rate")
    assert response.status_code == 503
    assert "temporarily unavailable" in response.json()["detail"]


def test_freshness_reports_lag_per_trust(client):
    body = client.get("/v1/freshness").json()
    assert body == [
        {
            "provider_code": "R0A",
            "provider_name": "MANCHESTER UNIVERSITY NHS FT",
            "last_event_at": "2024-10-04T10:29:30Z",
            "last_received_at": "2024-10-04T10:29:59Z",
            "events_last_hour": 12,
            "lag_seconds": 30.0,
        }
    ]


def test_metrics_count_requests_by_route(client):
    client.get("/v1/indicators")
    text = client.get("/metrics").text
    assert (
        'gapwatch_api_requests_total{method="GET",route="/v1/indicators",status="200"} 1.0' in text
    )
    assert "gapwatch_api_request_duration_seconds_bucket" in text


def test_openapi_docs_are_served(client):
    assert client.get("/docs").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    assert "/v1/icbs/{icb}/indicators/{indicator}" in paths


def test_windows_beyond_what_is_kept_or_far_in_the_future_get_422(client):
    """Found by schemathesis: year 9999 gave a 500, and a 9,000-year window 13 s of CPU."""
    base = "/v1/icbs/QOP/indicators/ed_attendance_rate"
    far = client.get(f"{base}?start=2024-10-01T00:00:00Z&end=9999-12-31T23:59:59Z")
    assert far.status_code == 422
    assert far.json()["detail"] == "end is more than a day in the future: nothing is counted there"
    long = client.get(f"{base}?start=0001-01-01T00:00:00Z&end=2024-10-01T00:00:00Z")
    assert long.status_code == 422
    assert long.json()["detail"] == "window is longer than the 400 days counts are kept"
    assert client.get(f"{base}?window=401d").status_code == 422
    assert client.get(f"{base}?window=400d").status_code == 200
    lsoas = client.get("/v1/icbs/QOP/lsoas?start=2024-10-01T00:00:00Z&end=9999-01-01T00:00:00Z")
    assert lsoas.status_code == 422
