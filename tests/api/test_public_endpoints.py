"""The public endpoints (``/v1/public``) and the CSV export under disclosure control,
through the real app: random events for one ICB are published for every breakdown, and
no count of 1 to 7 leaves, not even to a reader who combines every breakdown's cells
and the total (``attack``, from tests/unit/core/test_public_disclosure.py)."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Mapping
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings

from gapwatch.api.app import create_app
from gapwatch.api.routes.export import COLUMNS
from gapwatch.api.timefmt import parse_iso_ms
from gapwatch.core.demographics import UNKNOWN
from gapwatch.core.disclosure import RULE
from gapwatch.core.enrich import Profile
from gapwatch.core.group_stats import PER
from gapwatch.core.indicators import BREAKDOWNS, CATALOGUE
from gapwatch.core.windows import DAY_MS, HOUR_MS
from gapwatch.settings import Settings
from tests.api.conftest import NOW, MemoryStore
from tests.conftest import tiny_reference_data
from tests.tokens import national_headers
from tests.unit.core.test_public_disclosure import (
    TOTAL,
    PersonCell,
    Ref,
    attack,
    counts_of,
    equations,
    pinned,
    proportion_cells,
    truth_of,
)

MIDNIGHT = NOW - NOW % DAY_MS
DAYS_PER_YEAR = 365.25
RATE = "ed_attendance_rate"
PROPORTION = "outpatient_dna_proportion"
BASE = "/v1/public/icbs/QOP/indicators"
TOKEN = national_headers(now_s=NOW // 1000)
"""The export is not public: an ICB user's (here national) token."""


def make_client(store: MemoryStore, clock: Callable[[], int] = lambda: NOW) -> TestClient:
    settings_ = Settings(api={"versions_max_age_ms": 0, "sii_repetitions": 1000})
    return TestClient(create_app(settings_, store, tiny_reference_data(), clock_ms=clock))


def quintile(decile: str) -> str:
    return decile if decile == UNKNOWN else str((int(decile) + 1) // 2)


def publish(store: MemoryStore, den: Mapping[PersonCell, int], num: Mapping[PersonCell, int]):
    """Each denominator event is an ED arrival and an outpatient outcome the day before
    today; the numerator's are also did-not-attends."""
    for (decile, ethnic, sex, age), n in den.items():
        profile = Profile("QOP", quintile(decile), decile, ethnic, age, sex, ())
        for i in range(n):
            measures = ("ed_arrival", "outpatient_outcome")
            if i < num[(decile, ethnic, sex, age)]:
                measures = (*measures, "outpatient_dna")
            store.add(MIDNIGHT - (i % 20 + 1) * HOUR_MS, profile, measures)


def export_rows(client: TestClient, indicator: str, by: str) -> list[dict[str, str]]:
    response = client.get(
        f"/v1/icbs/QOP/indicators/{indicator}/export.csv?by={by}&window=7d", headers=TOKEN
    )
    assert response.status_code == 200, response.text
    assert response.headers["x-disclosure-control"] == "applied"
    table = list(csv.reader(io.StringIO(response.text)))
    assert tuple(table[0]) == COLUMNS
    return [dict(zip(COLUMNS, row, strict=True)) for row in table[1:]]


def check_values_come_from_published_counts(body: dict[str, Any], years: float) -> None:
    for g in (*body["groups"], body["total"]):
        assert g["numerator_display"] == ("*" if g["numerator"] is None else str(g["numerator"]))
        if g["suppressed"]:
            assert g["value"] is g["lower95"] is g["upper95"] is None
            continue
        if body["kind"] == "rate":
            if g["population"] is not None:
                published = g["value"] * g["population"] * years / PER
                assert published == pytest.approx(g["numerator"])
        elif g["denominator"]:
            assert g["value"] * g["denominator"] == pytest.approx(g["numerator"])


@settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(proportion_cells())
def test_nothing_small_leaves_a_public_endpoint_or_an_export_even_across_breakdowns(pair):
    den_cells, num_cells = pair
    store = MemoryStore()
    publish(store, den_cells, num_cells)
    client = make_client(store)
    counts = (
        counts_of(den_cells, "ed_arrival")
        + counts_of(den_cells, "outpatient_outcome")
        + counts_of(num_cells, "outpatient_dna")
    )
    years = 7 / DAYS_PER_YEAR
    for indicator in (RATE, PROPORTION):
        definition = CATALOGUE[indicator]
        numerator: dict[Ref, str] = {}
        denominator: dict[Ref, str] = {}
        for by in BREAKDOWNS:
            response = client.get(f"{BASE}/{indicator}?by={by}&window=7d")
            assert response.status_code == 200, response.text
            assert response.headers["x-disclosure-control"] == "applied"
            body = response.json()
            control = body["disclosure_control"]
            assert control["applied"] is True and control["rule"] == RULE
            assert control["suppressed"] == [
                g["group"] for g in (*body["groups"], body["total"]) if g["suppressed"]
            ]
            check_values_come_from_published_counts(body, years)
            for g in body["groups"]:
                numerator[(by, g["group"])] = g["numerator_display"]
                if g["denominator_display"] is not None:
                    denominator[(by, g["group"])] = g["denominator_display"]
            # One total, the same in every breakdown.
            assert (
                numerator.setdefault(TOTAL, body["total"]["numerator_display"])
                == (body["total"]["numerator_display"])
            )
            if body["total"]["denominator_display"] is not None:
                denominator[TOTAL] = body["total"]["denominator_display"]

            # The export of the same events (a rolling 7 days that holds them all) carries
            # the same published counts, and values from them too.
            rows = export_rows(client, indicator, by)
            groups = [r for r in rows if r["area"] == "QOP" and r["measure"] == "value"]
            assert [r["group"] for r in groups] == [*BREAKDOWNS[by], "all"]
            for row, g in zip(groups, (*body["groups"], body["total"]), strict=True):
                assert row["numerator"] == g["numerator_display"]
                if definition.kind == "proportion":
                    assert row["denominator"] == g["denominator_display"]
                assert (row["value"] == "") is (g["value"] is None)
                if row["value"] and definition.kind == "rate" and row["numerator"] != "0":
                    # Over the export's own window (7 days to the end of this hour).
                    elapsed = parse_iso_ms(row["as_of"]) - parse_iso_ms(row["window_start"])
                    person_years = float(row["denominator"]) * elapsed / DAY_MS / DAYS_PER_YEAR
                    count = float(row["value"]) * person_years / PER
                    assert count == pytest.approx(int(row["numerator"]))
                assert row["disclosure_control"] in ("rounded to 5", "suppressed") or (
                    row["disclosure_control"] == "denominator suppressed"
                )
            for row in rows:
                assert row["area"] == "England" or row["disclosure_control"] != (
                    "not needed (national)"
                )

        truth = truth_of(counts, definition.numerator)
        bounds = attack(numerator, equations(BREAKDOWNS))
        assert pinned(numerator, truth, bounds) == []
        if definition.denominator is not None:
            den_truth = truth_of(counts, definition.denominator)
            both = numerator | {(f"d:{t}", k): v for (t, k), v in denominator.items()}
            truth |= {(f"d:{t}", k): n for (t, k), n in den_truth.items()}
            identities = equations(BREAKDOWNS) + [
                ((f"d:{w[0]}", w[1]), tuple((f"d:{t}", k) for t, k in parts))
                for w, parts in equations(BREAKDOWNS)
            ]
            ceilings = [(ref, (f"d:{ref[0]}", ref[1])) for ref in numerator]
            assert pinned(both, truth, attack(both, identities, ceilings)) == []


@pytest.fixture()
def counted(store: MemoryStore) -> MemoryStore:
    """QOP: 26, 3, 12 and 40 arrivals in IMD quintiles 1, 2, 3 and 5 yesterday; QHL: 9."""
    for q, n in (("1", 26), ("2", 3), ("3", 12), ("5", 40)):
        for i in range(n):
            profile = Profile("QOP", q, str(2 * int(q)), "white", "18-39", "female", ())
            store.add(MIDNIGHT - (i % 20 + 1) * HOUR_MS, profile, ("ed_arrival",))
    for i in range(9):
        profile = Profile("QHL", "1", "1", "white", "18-39", "male", ())
        store.add(MIDNIGHT - (i + 1) * HOUR_MS, profile, ("ed_arrival",))
    return store


def test_a_public_answer_shows_controlled_counts_values_from_them_and_england(counted):
    response = make_client(counted).get(f"{BASE}/{RATE}?by=imd_quintile&window=7d")
    assert response.status_code == 200
    body = response.json()
    shown = {g["group"]: g["numerator_display"] for g in body["groups"]}
    # 3 is suppressed, and 12 beside it too (else 80 - 25 - 40 - 0 would leave 13-ish).
    assert shown == {"1": "25", "2": "*", "3": "*", "4": "0", "5": "40", UNKNOWN: "0"}
    assert body["total"]["numerator"] == 80
    assert body["disclosure_control"]["suppressed"] == ["2", "3"]
    assert body["window"] == {
        "start": "2024-09-27T00:00:00Z",
        "end": "2024-10-04T00:00:00Z",
        "requested": "7d",
        "days": 7.0,
    }
    gap = body["gap"]
    q1, q5 = body["groups"][0], body["groups"][4]
    assert gap["absolute"] == pytest.approx(q1["value"] - q5["value"])
    assert gap["sii"] is None and "suppressed by disclosure control" in gap["note"]
    # England is national: its exact count (81 + 9 = 90) over its population.
    england = tiny_reference_data().population.people(("QOP", "QHL"), "total", "all")
    assert england is not None
    years = 7 / DAYS_PER_YEAR
    assert body["benchmark"]["value"] * england * years / PER == pytest.approx(90)
    assert "disclosure-controlled" in body["method"]


def test_public_endpoints_need_no_token(counted):
    client = make_client(counted)
    for path in ("/v1/public/indicators", "/v1/public/icbs", f"{BASE}/{RATE}"):
        response = client.get(path)
        assert response.status_code == 200, (path, response.text)


def test_the_catalogue_and_icb_list_say_what_is_offered(counted):
    client = make_client(counted)
    catalogue = client.get("/v1/public/indicators").json()
    assert [i["id"] for i in catalogue] == list(CATALOGUE)
    assert {tuple(i["windows"]) for i in catalogue} == {("7d", "28d", "91d")}
    assert catalogue[0]["default_window"] == "28d"
    assert [i["ods_code"] for i in client.get("/v1/public/icbs").json()] == ["QHL", "QOP"]


def test_the_default_window_is_28_whole_days_to_the_last_midnight(counted):
    body = make_client(counted).get(f"{BASE}/{RATE}").json()
    assert body["by"] == "imd_quintile"
    assert body["window"]["requested"] == "28d"
    assert body["window"]["end"] == "2024-10-04T00:00:00Z"
    assert body["window"]["start"] == "2024-09-06T00:00:00Z"


def test_an_answer_is_kept_for_the_day_and_moves_with_the_next_midnight(counted):
    now = [NOW]
    client = make_client(counted, lambda: now[0])
    first = client.get(f"{BASE}/{RATE}?by=sex&window=7d").json()
    for i in range(30):  # late events for yesterday do not change today's answer
        profile = Profile("QOP", "1", "2", "white", "18-39", "female", ())
        counted.add(MIDNIGHT - (i + 1) * HOUR_MS, profile, ("ed_arrival",))
    assert client.get(f"{BASE}/{RATE}?by=sex&window=7d").json() == first
    now[0] = NOW + DAY_MS
    later = client.get(f"{BASE}/{RATE}?by=sex&window=7d").json()
    assert later["window"]["end"] == "2024-10-05T00:00:00Z"
    assert later["total"]["numerator"] == 110


@pytest.mark.parametrize(
    ("path", "status", "message"),
    [
        (
            f"/v1/public/icbs/XXX/indicators/{RATE}",
            404,
            "unknown ICB 'XXX': use an ODS code from /v1/public/icbs",
        ),
        (f"{BASE}/nope", 404, "unknown indicator 'nope': see /v1/public/indicators"),
        (f"{BASE}/{RATE}?by=postcode", 422, "unknown breakdown 'postcode': use one of"),
        (f"{BASE}/{RATE}?window=24h", 422, "public windows are 7d, 28d, 91d"),
        (f"{BASE}/{RATE}?window=30d", 422, "unknown window '30d'"),
        (f"{BASE}/{RATE}?start=2024-01-01&end=2024-02-01", 422, "start, end is not offered"),
        (f"{BASE}/{RATE}?standardised=true", 422, "standardised is not offered publicly"),
        (f"{BASE}/{RATE}?confidence=0.998", 422, "confidence is not offered publicly"),
    ],
)
def test_bad_parameters_get_a_clear_message(counted, path, status, message):
    response = make_client(counted).get(path)
    assert response.status_code == status
    assert message in response.json()["detail"]


def test_a_store_that_does_not_answer_is_a_503(counted):
    counted.down = True
    response = make_client(counted).get(f"{BASE}/{RATE}")
    assert response.status_code == 503
    assert "temporarily unavailable" in response.json()["detail"]
