"""Each period gap equals what the full report (``build_report``) gives on the same counts."""

from __future__ import annotations

import math
import random

import pytest

from gapwatch.core.demographics import ETHNIC_GROUPS
from gapwatch.core.gap_series import gap_value
from gapwatch.core.group_stats import ReportOptions
from gapwatch.core.indicators import BREAKDOWNS, CATALOGUE
from gapwatch.core.period_gaps import GAP_FIELDS, SeriesId, period_gaps, series_ids, sii_point
from gapwatch.core.report import build_report
from gapwatch.core.stats.sii import SiiInput, sii
from tests.conftest import tiny_reference_data

YEARS = 1 / 365.25


_DENOMINATORS = {i.denominator for i in CATALOGUE.values() if i.denominator}


def _counts(rng: random.Random, low: int, high: int) -> dict[str, int]:
    """Random counts where every denominator measure outnumbers every numerator."""
    return {
        field: rng.randint(high, 3 * high)
        if field.split("|")[0] in _DENOMINATORS
        else rng.randint(low, high)
        for field in GAP_FIELDS
    }


def _close(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("indicator", sorted(CATALOGUE))
def test_every_gap_matches_the_full_report(seed: int, indicator: str) -> None:
    ref = tiny_reference_data()
    rng = random.Random(seed)
    # Seeds 0-1 include zeros (SII refused, ratios undefined), the rest are all positive.
    counts = _counts(rng, 0 if seed < 2 else 5, 40 if seed < 2 else 400)
    ind = CATALOGUE[indicator]
    options = ReportOptions(levels=(0.95,), sii_repetitions=1000)
    for by in ("imd_quintile", "imd_decile", "ethnic_group"):
        gaps = period_gaps(ind, by, counts, ref.population, ("QOP",), YEARS, "white")
        report = build_report(ind, by, counts, ref.population, ("QOP",), YEARS, options)
        assert gaps, by
        for measure, value in gaps.items():
            base, _, group = measure.partition(":")
            expected = gap_value(report, base, group or None)
            assert _close(value, expected), (by, measure, value, expected)


def test_the_sii_point_is_phes_closed_form_fit() -> None:
    pops = [1200.0, 900.0, 1500.0, 700.0, 1000.0]
    values = [30.0, 26.0, 21.0, 19.0, 12.5]
    rows = [
        SiiInput(q, p, v, lower=v * 0.9, upper=v * 1.1)
        for q, (p, v) in enumerate(zip(pops, values, strict=True), 1)
    ]
    expected = sii(rows, repetitions=1000).sii
    assert sii_point(pops, values) == pytest.approx(expected, rel=1e-12)
    # Falling values from the most to the least deprived give a negative slope.
    assert sii_point(pops, values) < 0


def test_series_cover_each_measure_and_ethnic_group_once() -> None:
    ids = series_ids(["emergency_admission_rate"], ["imd_quintile", "ethnic_group"], "white")
    assert SeriesId("emergency_admission_rate", "imd_quintile", "sii") in ids
    ethnic = [s for s in ids if s.breakdown == "ethnic_group"]
    groups = [g for g in ETHNIC_GROUPS if g not in ("white", "unknown")]
    assert sorted(s.measure for s in ethnic) == sorted(
        f"{m}:{g}" for m in ("difference", "ratio") for g in groups
    )
    assert all(s.group in groups and s.base_measure in ("difference", "ratio") for s in ethnic)
    assert len(ids) == len(set(ids)) == 3 + 2 * len(groups)


def test_breakdowns_without_a_gap_give_no_series() -> None:
    assert series_ids(["ed_attendance_rate"], ["age_band", "sex"], "white") == []
    assert set(BREAKDOWNS["imd_quintile"]) - {"unknown"} == {"1", "2", "3", "4", "5"}


def test_groups_with_too_few_events_are_not_charted() -> None:
    ref = tiny_reference_data()
    counts = dict.fromkeys(GAP_FIELDS, 40)
    counts["admission_emergency|imd_decile|9"] = 2
    counts["admission_emergency|imd_decile|10"] = 2  # quintile 5: 4 events
    counts["admission_emergency|ethnic_group|black"] = 4
    ind = CATALOGUE["emergency_admission_rate"]
    imd = period_gaps(ind, "imd_quintile", counts, ref.population, ("QOP",), YEARS, "white", 5)
    assert imd == {"difference": None, "ratio": None, "sii": None}
    # Deciles 9 and 10 apart: the D1 - D10 gap has too few, so has the SII.
    deciles = period_gaps(ind, "imd_decile", counts, ref.population, ("QOP",), YEARS, "white", 5)
    assert deciles == {"difference": None, "ratio": None, "sii": None}
    ethnic = period_gaps(ind, "ethnic_group", counts, ref.population, ("QOP",), YEARS, "white", 5)
    assert ethnic["difference:black"] is None and ethnic["ratio:black"] is None
    assert ethnic["difference:asian"] is not None
    counts["admission_emergency|imd_decile|3"] = 1  # only the SII needs quintile 2
    counts["admission_emergency|imd_decile|4"] = 1
    counts["admission_emergency|imd_decile|9"] = 40
    gaps = period_gaps(ind, "imd_quintile", counts, ref.population, ("QOP",), YEARS, "white", 5)
    assert gaps["difference"] is not None and gaps["ratio"] is not None and gaps["sii"] is None
