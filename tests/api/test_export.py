"""CSV export of an indicator view: the JSON endpoint's view, under disclosure control.

The JSON endpoint shows an authorised ICB user the exact counts; the export (which may be
passed on) carries them as published: ``*`` for 1 to 7 and for cells suppressed to
protect them, other counts rounded to 5, values, limits and gaps from those counts, and
England's national figures as they are.
"""

from __future__ import annotations

import csv
import io

import pytest

from gapwatch.api.routes.export import COLUMNS
from gapwatch.core.disclosure import control_count
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
    # 26, 3, 12 and 40 arrivals in quintiles 1, 2, 3 and 5 within the last day.
    for q, n in (("1", 26), ("2", 3), ("3", 12), ("5", 40)):
        for i in range(n):
            store.add(NOW - (i % 20 + 1) * HOUR_MS, profile(q), ("ed_arrival",))
    # Another ICB's events count for England only.
    store.add(
        NOW - HOUR_MS, Profile("QHL", "1", "1", "white", "18-39", "male", ()), ("ed_arrival",)
    )


def test_the_csv_holds_each_group_the_total_england_and_the_imd_gap_controlled(client, counted):
    response = client.get(f"{BASE}/export.csv?by=imd_quintile&window=24h")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.headers["x-disclosure-control"] == "applied"
    disposition = response.headers["content-disposition"]
    assert disposition.startswith("attachment; filename=")
    assert 'filename="gapwatch_QOP_ed_attendance_rate_imd_quintile_24h_' in disposition
    assert disposition.endswith('Z.csv"')
    body = client.get(f"{BASE}?by=imd_quintile&window=24h").json()
    rows = rows_of(response.text)

    values = [r for r in rows if r["measure"] == "value"]
    groups = [r for r in values if r["area"] == "QOP" and r["group"] != "all"]
    assert [r["group"] for r in groups] == [g["group"] for g in body["groups"]]
    # Quintile 2 (3 events) is suppressed, and quintile 3 (12) to protect it.
    assert [r["numerator"] for r in groups] == ["25", "*", "*", "0", "40", "0"]
    assert [r["disclosure_control"] for r in groups] == [
        "rounded to 5",
        "suppressed",
        "suppressed",
        "rounded to 5",
        "rounded to 5",
        "rounded to 5",
    ]
    for row, g in zip(groups, body["groups"], strict=True):
        assert row["unit"] == "per 100,000 population per year"
        assert (row["window_start"], row["window_end"], row["as_of"]) == (
            body["window"]["start"],
            body["window"]["end"],
            body["as_of"],
        )
        if row["numerator"] == "*":
            assert row["value"] == row["lower95"] == row["upper95"] == ""
            continue
        published = int(row["numerator"])
        assert published == control_count(g["numerator"]).value
        if g["value"] is None:
            assert row["value"] == ""
        elif g["numerator"] == 0:
            assert num(row["value"]) == g["value"] == 0
        else:
            # The same population and elapsed time, over the published count.
            assert num(row["value"]) == pytest.approx(g["value"] * published / g["numerator"])
            assert num(row["lower95"]) < num(row["value"]) < num(row["upper95"])
    unknown = next(r for r in groups if r["group"] == "unknown")
    assert unknown["value"] == unknown["denominator"] == ""  # no made-up zero

    (total,) = [r for r in values if r["area"] == "QOP" and r["group"] == "all"]
    assert body["total"]["numerator"] == 81
    assert total["numerator"] == "80"
    assert num(total["value"]) == pytest.approx(body["total"]["value"] * 80 / 81)
    (england,) = [r for r in values if r["area"] == "England"]
    assert england["group"] == "all" and england["numerator"] == ""
    assert england["disclosure_control"] == "not needed (national)"
    assert num(england["value"]) == body["benchmark"]["value"]
    assert num(england["lower95"]) == body["benchmark"]["lower95"]

    gap = {r["measure"]: r for r in rows if r["measure"] != "value"}
    assert list(gap) == ["absolute", "ratio", "sii", "rii"]
    q1, q5 = num(groups[0]["value"]), num(groups[4]["value"])
    assert q1 is not None and q5 is not None
    assert num(gap["absolute"]["value"]) == pytest.approx(q1 - q5)
    assert num(gap["ratio"]["value"]) == pytest.approx(q1 / q5)
    assert gap["absolute"]["disclosure_control"] == "from published counts"
    for measure in ("sii", "rii"):  # they need every quintile
        assert gap[measure]["value"] == ""
        assert gap[measure]["disclosure_control"] == "suppressed"
    assert gap["absolute"]["group"] == gap["ratio"]["group"] == "1 vs 5"
    assert gap["ratio"]["unit"] == gap["rii"]["unit"] == "ratio"
    assert gap["sii"]["unit"] == "per 100,000 population per year"


def test_ethnic_group_exports_each_comparison_with_the_reference_group(client, store):
    # (outcomes, did-not-attends) per group: white 40/9, black 20/14, mixed 12/8, asian 3/1.
    for eth, outcomes, dnas in (
        ("white", 40, 9),
        ("black", 20, 14),
        ("mixed", 12, 8),
        ("asian", 3, 1),
    ):
        for i in range(outcomes):
            measures = (
                ("outpatient_outcome", "outpatient_dna") if i < dnas else ("outpatient_outcome",)
            )
            store.add(NOW - (i % 20 + 1) * HOUR_MS, profile("3", eth), measures)
    url = "/v1/icbs/QOP/indicators/outpatient_dna_proportion"
    response = client.get(f"{url}/export.csv?by=ethnic_group&window=24h")
    assert response.status_code == 200
    rows = rows_of(response.text)
    value = {r["group"]: r for r in rows if r["measure"] == "value" and r["area"] == "QOP"}
    assert (value["white"]["numerator"], value["white"]["denominator"]) == ("10", "40")
    assert (value["black"]["numerator"], value["black"]["denominator"]) == ("15", "20")
    # Asian (1 of 3) is suppressed; mixed (8 of 12) hides with it, in both counts.
    assert (value["asian"]["numerator"], value["asian"]["denominator"]) == ("*", "*")
    assert (value["mixed"]["numerator"], value["mixed"]["denominator"]) == ("*", "*")
    assert num(value["black"]["value"]) == 0.75
    assert num(value["white"]["value"]) == 0.25
    black = [r for r in rows if r["group"] == "black vs white"]
    assert [r["measure"] for r in black] == ["difference", "ratio"]
    assert num(black[0]["value"]) == pytest.approx(0.5)
    assert black[0]["unit"] == "proportion (0-1)"
    assert num(black[1]["value"]) == pytest.approx(3.0)
    assert black[1]["disclosure_control"] == "from published counts"
    asian = [r for r in rows if r["group"] == "asian vs white"]
    assert [(r["value"], r["disclosure_control"]) for r in asian] == [("", "suppressed")] * 2


def test_breakdowns_without_a_gap_export_values_only(client, counted):
    rows = rows_of(client.get(f"{BASE}/export.csv?by=sex&window=7d").text)
    assert {r["measure"] for r in rows} == {"value"}
    assert [r["group"] for r in rows][-2:] == ["all", "all"]
    female = next(r for r in rows if r["group"] == "female")
    assert female["numerator"] == "80"


def test_every_count_in_an_export_is_controlled(client, counted):
    for by in ("imd_quintile", "imd_decile", "ethnic_group", "age_band", "sex"):
        rows = rows_of(client.get(f"{BASE}/export.csv?by={by}&window=24h").text)
        for row in rows:
            if row["numerator"] not in ("", "*"):
                assert int(row["numerator"]) % 5 == 0 and not 1 <= int(row["numerator"]) <= 7
            assert row["disclosure_control"]


def test_the_csv_url_is_never_answered_with_the_cached_json(client, counted):
    """The fast path replays cached answers by URL: it must neither serve JSON for the
    CSV URL nor CSV for the JSON URL, however often either is asked."""
    for _ in range(3):
        csv_response = client.get(f"{BASE}/export.csv?by=imd_quintile&window=24h")
        assert csv_response.headers["content-type"].startswith("text/csv")
        json_response = client.get(f"{BASE}?by=imd_quintile&window=24h")
        assert json_response.headers["content-type"] == "application/json"
        assert json_response.json()["total"]["numerator"] == 81


def test_age_standardised_rates_are_not_exported(client, counted):
    response = client.get(f"{BASE}/export.csv?by=sex&window=7d&standardised=true")
    assert response.status_code == 422
    assert "age-standardised rates are not published" in response.json()["detail"]


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
