import pytest

from gapwatch.core.indicators import BREAKDOWNS, CATALOGUE
from gapwatch.core.values import compute
from gapwatch.core.windows import DAY_MS

YEAR_MS = int(365.25 * DAY_MS)


def test_rates_are_per_100k_per_year_over_the_window(tiny_ref):
    counts = {
        "ed_arrival|imd_decile|1": 70,
        "ed_arrival|imd_decile|2": 50,
        "ed_arrival|sex|female": 120,
    }
    # QOP quintile 1 population: 2 sexes x 6 bands x 1000 = 12,000
    values = compute(
        CATALOGUE["ed_attendance_rate"],
        "imd_quintile",
        counts,
        tiny_ref.population,
        ["QOP"],
        YEAR_MS,
    )
    q1 = values.groups[0]
    assert (q1.group, q1.numerator, q1.denominator) == ("1", 120, 12_000.0)
    assert q1.value == pytest.approx(1000.0)
    assert values.total.numerator == 120
    assert values.total.value == pytest.approx(120 / 60_000 * 100_000)
    unknown = values.groups[-1]
    assert (unknown.group, unknown.denominator, unknown.value) == ("unknown", None, None)


def test_a_short_window_scales_the_rate_up(tiny_ref):
    counts = {"ed_arrival|imd_decile|2": 12}
    yearly = (
        compute(
            CATALOGUE["ed_attendance_rate"],
            "imd_quintile",
            counts,
            tiny_ref.population,
            ["QOP"],
            YEAR_MS,
        )
        .groups[0]
        .value
    )
    daily = (
        compute(
            CATALOGUE["ed_attendance_rate"],
            "imd_quintile",
            counts,
            tiny_ref.population,
            ["QOP"],
            DAY_MS,
        )
        .groups[0]
        .value
    )
    assert daily == pytest.approx(yearly * 365.25)


def test_proportions_divide_by_their_denominator_measure(tiny_ref):
    counts = {"outpatient_dna|ethnic_group|black": 3, "outpatient_outcome|ethnic_group|black": 12}
    values = compute(
        CATALOGUE["outpatient_dna_proportion"],
        "ethnic_group",
        counts,
        tiny_ref.population,
        ["QOP"],
        DAY_MS,
    )
    black = next(g for g in values.groups if g.group == "black")
    assert (black.numerator, black.denominator, black.value) == (3, 12.0, 0.25)
    white = next(g for g in values.groups if g.group == "white")
    assert white.value is None  # no denominator events: no value, not zero


def test_under_18_rates_use_the_under_18_population(tiny_ref):
    counts = {"admission_emergency_u18|imd_decile|3": 6}
    values = compute(
        CATALOGUE["emergency_admission_rate_u18"],
        "imd_quintile",
        counts,
        tiny_ref.population,
        ["QOP"],
        YEAR_MS,
    )
    q2 = values.groups[1]
    assert q2.denominator == 4_000.0  # 2 sexes x 2 child bands x 1000
    eth = compute(
        CATALOGUE["emergency_admission_rate_u18"],
        "ethnic_group",
        counts,
        tiny_ref.population,
        ["QOP"],
        YEAR_MS,
    )
    assert all(g.value is None for g in eth.groups)


def test_every_catalogue_breakdown_lists_its_groups():
    for indicator in CATALOGUE.values():
        for by in indicator.breakdowns:
            assert BREAKDOWNS[by][-1] == "unknown"
    required = {
        "ed_attendance_rate",
        "emergency_admission_rate",
        "outpatient_dna_proportion",
        "ed_4h_breach_proportion",
        "ethnicity_unknown_proportion",
    }
    assert required <= set(CATALOGUE)
