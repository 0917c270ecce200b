"""CSV export of an indicator view: the same numbers as the JSON endpoint, as rows."""

from __future__ import annotations

import csv
import io

import pytest

from gapwatch.api.routes.export import COLUMNS
from gapwatch.core.enrich import Profile
from gapwatch.core.windows import HOUR_MS
from tests.api.conftest import NOW, profile

BASE = "/v1/icbs/QOP/indicators/ed_attendance_rate"


def rows_of(text: str) -> list[dict[str, str]]:
    table = list(csv.reader(io.StringIO(text)))
    assert tuple(table[0]) == COLUMNS
    return [dict(zip(COLUMNS, row, strict=True)) for row in table[1:]]


def num(cell: str) -> float | None:
    return None if cell == "" else float(cell)


@pytest.fixture()
def counted(store):
    for q, n in (("1", 6), ("2", 3), ("3", 2), ("5", 1)):
        for i in range(n):
            store.add(NOW - (i + 1) * HOUR_MS, profile(q), ("ed_arrival",))
    # Another ICB's events count for England only.
    store.add(
        NOW - HOUR_MS, Profile("QHL", "1", "1", "white", "18-39", "male", ()), ("ed_arrival",)
    )


def test_the_csv_holds_each_group_the_total_england_and_the_imd_gap(client, counted):
    response = client.get(f"{BASE}/export.csv?by=imd_quintile&window=24h")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    disposition = response.headers["content-disposition"]
    assert disposition.startswith("attachment; filename=")
    assert 'filename="gapwatch_QOP_ed_attendance_rate_imd_quintile_24h_' in disposition
    assert disposition.endswith('Z.csv"')
    body = client.get(f"{BASE}?by=imd_quintile&window=24h").json()
    rows = rows_of(response.text)

    values = [r for r in rows if r["measure"] == "value"]
    groups = [r for r in values if r["area"] == "QOP" and r["group"] != "all"]
    assert [r["group"] for r in groups] == [g["group"] for g in body["groups"]]
    for row, g in zip(groups, body["groups"], strict=True):
        assert int(row["numerator"]) == g["numerator"]
        assert num(row["value"]) == g["value"]
        assert num(row["lower95"]) == g["lower95"]
        assert num(row["upper95"]) == g["upper95"]
        assert row["unit"] == "per 100,000 population per year"
        assert (row["window_start"], row["window_end"], row["as_of"]) == (
            body["window"]["start"],
            body["window"]["end"],
            body["as_of"],
        )
    unknown = next(r for r in groups if r["group"] == "unknown")
    assert unknown["value"] == unknown["denominator"] == ""  # no made-up zero

    (total,) = [r for r in values if r["area"] == "QOP" and r["group"] == "all"]
    assert int(total["numerator"]) == body["total"]["numerator"] == 12
    assert num(total["value"]) == body["total"]["value"]
    (england,) = [r for r in values if r["area"] == "England"]
    assert england["group"] == "all" and england["numerator"] == ""
    assert num(england["value"]) == body["benchmark"]["value"]
    assert num(england["lower95"]) == body["benchmark"]["lower95"]

    gap = {r["measure"]: r for r in rows if r["measure"] != "value"}
    assert list(gap) == ["absolute", "ratio", "sii", "rii"]
    for measure, key in (
        ("absolute", "absolute"),
        ("ratio", "ratio"),
        ("sii", "sii"),
        ("rii", "rii"),
    ):
        row = gap[measure]
        assert num(row["value"]) == body["gap"][key]
        assert num(row["lower95"]) == body["gap"][f"{key}_lower"]
        assert num(row["upper95"]) == body["gap"][f"{key}_upper"]
    assert gap["absolute"]["group"] == gap["ratio"]["group"] == "1 vs 5"
    assert gap["ratio"]["unit"] == gap["rii"]["unit"] == "ratio"
    assert gap["sii"]["unit"] == "per 100,000 population per year"


def test_ethnic_group_exports_each_comparison_with_the_reference_group(client, store):
    for eth in ("white", "white", "black", "asian"):
        store.add(NOW - HOUR_MS, profile("3", eth), ("outpatient_outcome", "outpatient_dna"))
    store.add(NOW - HOUR_MS, profile("3", "black"), ("outpatient_outcome",))
    url = "/v1/icbs/QOP/indicators/outpatient_dna_proportion"
    response = client.get(f"{url}/export.csv?by=ethnic_group&window=24h")
    assert response.status_code == 200
    body = client.get(f"{url}?by=ethnic_group&window=24h").json()
    rows = rows_of(response.text)
    black = [r for r in rows if r["group"] == "black vs white"]
    assert [r["measure"] for r in black] == ["difference", "ratio"]
    comparison = next(c for c in body["gap"]["comparisons"] if c["group"] == "black")
    assert num(black[0]["value"]) == comparison["difference"]
    assert black[0]["unit"] == "proportion (0-1)"
    assert num(black[1]["value"]) == comparison["ratio"] == 0.5
    assert num(black[1]["upper95"]) == comparison["ratio_upper"]
    black_value = next(r for r in rows if r["group"] == "black" and r["measure"] == "value")
    assert (black_value["numerator"], black_value["denominator"]) == ("1", "2.0")


def test_breakdowns_without_a_gap_export_values_only(client, counted):
    rows = rows_of(client.get(f"{BASE}/export.csv?by=sex&window=7d").text)
    assert {r["measure"] for r in rows} == {"value"}
    assert [r["group"] for r in rows][-2:] == ["all", "all"]


def test_the_csv_url_is_never_answered_with_the_cached_json(client, counted):
    """The export computes under the JSON endpoint's cache key, so the fast path (which
    replays cached answers by URL) must neither serve JSON for the CSV URL nor CSV for
    the JSON URL, however often either is asked."""
    for _ in range(3):
        csv_response = client.get(f"{BASE}/export.csv?by=imd_quintile&window=24h")
        assert csv_response.headers["content-type"].startswith("text/csv")
        json_response = client.get(f"{BASE}?by=imd_quintile&window=24h")
        assert json_response.headers["content-type"] == "application/json"
        assert json_response.json()["total"]["numerator"] == 12


@pytest.mark.parametrize(
    ("path", "status", "message"),
    [
        ("/v1/icbs/XXX/indicators/ed_attendance_rate", 404, "unknown ICB"),
        ("/v1/icbs/QOP/indicators/nope", 404, "unknown indicator"),
        ("/v1/icbs/QOP/indicators/ed_attendance_rate?by=postcode", 422, "unknown breakdown"),
        ("/v1/icbs/QOP/indicators/ed_attendance_rate?window=3w", 422, "window must look like"),
        ("/v1/icbs/QOP/indicators/ed_attendance_rate?start=2024-01-01", 422, "both start"),
    ],
)
def test_bad_parameters_get_the_json_endpoints_errors(client, path, status, message):
    base, _, query = path.partition("?")
    exported = client.get(f"{base}/export.csv" + (f"?{query}" if query else ""))
    assert exported.status_code == status
    assert message in exported.json()["detail"]
    assert exported.json() == client.get(path).json()


def test_a_store_that_does_not_answer_is_a_503(client, store):
    store.down = True
    response = client.get(f"{BASE}/export.csv?window=24h")
    assert response.status_code == 503
    assert "temporarily unavailable" in response.json()["detail"]
