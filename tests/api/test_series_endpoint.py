"""GET .../series: the endpoint's limits equal NHSRplotthedots' to 1e-9 and its labels
exactly (the R package re-implemented line by line in tests/reference, checked there
against the package's own snapshots)."""

from __future__ import annotations

import math
import random
from typing import Any

import pytest
from fastapi.testclient import TestClient

from gapwatch.api.app import create_app
from gapwatch.core.period_gaps import GAP_FIELDS
from gapwatch.core.refdata import ReferenceData
from gapwatch.core.windows import DAY_MS, HOUR_MS
from gapwatch.settings import Settings
from tests.api.conftest import DayRows, MemoryStore
from tests.reference.nhsrplotthedots import ptd_spc
from tests.tokens import national_headers

TODAY = 20_400 * DAY_MS
NOW = TODAY + 9 * HOUR_MS
DAYS = 90
PATH = "/v1/icbs/QOP/indicators/emergency_admission_rate/series"


class Days(DayRows):
    """Day buckets of QOP: stable, then a shift and a climb in the most deprived
    deciles, so every kind of special cause turns up somewhere."""

    def __init__(self, seed: int) -> None:
        rng = random.Random(seed)
        super().__init__({})
        index = {f: i for i, f in enumerate(GAP_FIELDS)}
        for day in range(DAYS + 1):  # + today, still open
            row = [0] * len(GAP_FIELDS)
            lift = 1.0 + (0.25 if 40 <= day < 55 else 0.0) + max(0, day - 80) * 0.12
            for d in range(1, 11):
                mean = 30.0 * (lift if d <= 2 else 1.0)
                row[index[f"admission_emergency|imd_decile|{d}"]] = max(
                    1, round(rng.gauss(mean, math.sqrt(mean)))
                )
            for g in ("white", "asian", "black", "mixed", "other", "unknown"):
                row[index[f"admission_emergency|ethnic_group|{g}"]] = rng.randint(5, 40)
            self.rows[("QOP", TODAY - (DAYS - day) * DAY_MS)] = row


def _client(ref: ReferenceData, seed: int) -> TestClient:
    settings = Settings(alerts={"lateness_s": 3600})
    app = create_app(settings, MemoryStore(), ref, clock_ms=lambda: NOW, days=Days(seed))
    return TestClient(app, headers=national_headers(now_s=NOW // 1000))


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize(
    ("by", "measure", "group"),
    [
        ("imd_quintile", "difference", None),
        ("imd_quintile", "ratio", None),
        ("imd_quintile", "sii", None),
        ("imd_decile", "difference", None),
        ("ethnic_group", "ratio", "asian"),
    ],
)
def test_limits_and_labels_equal_nhsrplotthedots(
    tiny_ref: ReferenceData, seed: int, by: str, measure: str, group: str | None
) -> None:
    params: dict[str, Any] = {"by": by, "measure": measure, "points": DAYS}
    if group:
        params["group"] = group
    response = _client(tiny_ref, seed).get(PATH, params=params)
    assert response.status_code == 200, response.text
    body = response.json()
    points = body["points"]
    assert len(points) == DAYS
    rows = ptd_spc([p["value"] for p in points], improvement_direction=body["improvement"])
    for point, row in zip(points, rows, strict=True):
        assert _close(point["mean"], row.mean_col)
        assert _close(point["lpl"], row.lpl) and _close(point["upl"], row.upl)
        assert _close(point["lower_2sigma"], row.nlpl)
        assert _close(point["upper_2sigma"], row.nupl)
        assert point["rule"] == row.special_cause_type
        assert point["point_type"] == row.point_type
    if by.startswith("imd") and measure != "ratio":
        # The built-in shift and climb must show, or this test would compare only
        # common causes.
        assert {p["point_type"] for p in points} >= {"special_cause_concern", "common_cause"}


def test_the_open_period_is_apart_and_bad_parameters_are_refused(tiny_ref: ReferenceData) -> None:
    client = _client(tiny_ref, 1)
    body = client.get(PATH, params={"points": 30}).json()
    assert body["points"][-1]["period_start"] == "2025-11-07T00:00:00Z"
    assert body["open_period"]["period_start"] == "2025-11-08T00:00:00Z"
    assert body["open_period"]["elapsed_fraction"] == pytest.approx(9 / 24)
    assert body["open_period"]["value"] is not None
    assert body["improvement"] == "decrease" and body["variation"]
    weekly = client.get(PATH, params={"period": "week", "points": 13}).json()
    assert len(weekly["points"]) + len(weekly["missing"]) == 13
    assert weekly["points"][-1]["period_start"] == "2025-10-27T00:00:00Z"  # a Monday
    for params, status, words in [
        ({"by": "age_band"}, 422, "no gap series"),
        ({"measure": "median"}, 422, "unknown measure"),
        ({"by": "ethnic_group", "measure": "ratio", "group": "white"}, 422, "group="),
        ({"group": "asian"}, 422, "only to by=ethnic_group"),
        ({"points": 5}, 422, ""),
        ({"period": "month"}, 422, ""),
    ]:
        response = client.get(PATH, params=params)
        assert response.status_code == status, (params, response.text)
        assert words in response.text
    assert client.get("/v1/icbs/XXX/indicators/emergency_admission_rate/series").status_code == 404
    assert client.get("/v1/icbs/QOP/indicators/nope/series").status_code == 404
