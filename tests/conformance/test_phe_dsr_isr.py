"""calculate_dsr, calculate_ISRatio and calculate_ISRate against PHE's reference cases.

Bands are always matched by ``ageband_order`` (one upstream label, "55-69", is a typo).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

import pytest

from gapwatch.core.stats.confidence import Estimate, level_label
from gapwatch.core.stats.dsr import ESP2013, ESP2013_WEIGHTS, DsrResult, dsr, dsr_nonindependent
from gapwatch.core.stats.isr import IsrResult, isr_rate, isr_ratio
from tests.conformance.conftest import Rows, assert_close, num

BOTH = (0.95, 0.998)
DSR_CASES = [f"dsr{i:02d}" for i in range(1, 13)]
ISR_CASES = [f"isr{i:02d}" for i in range(1, 13)]
ISR_ZERO_POP_CASES = [f"isr{i:02d}" for i in range(13, 17)]

# The testresults_DSR sheet's 99.8% limits for testdata_1976, per multiplier: exactly ten
# times the right values, never checked by the R tests, and blanked in dsr_expected.csv.
UPSTREAM_1976_998 = {10000.0: (7659.28, 9599.21), 100000.0: (76592.82, 95992.12)}


def case(rows: Rows, case_id: str) -> dict[str, str]:
    (row,) = [r for r in rows if r["case_id"] == case_id]
    return row


def bands(rows: Rows, area: str) -> Rows:
    return sorted((r for r in rows if r["area"] == area), key=lambda r: int(r["ageband_order"]))


def assert_near(got: float | None, expected: float | None, tolerance: float, what: str) -> None:
    """Absolute comparison, for expectations stored to a fixed number of decimals."""
    if expected is None:
        assert got is None, f"{what}: expected missing, got {got!r}"
        return
    assert got is not None, f"{what}: expected {expected!r}, got missing"
    assert abs(got - expected) <= tolerance, f"{what}: got {got!r}, expected {expected!r}"


def assert_limits(
    got: Estimate, row: dict[str, str], levels: tuple[float, ...], check: Callable[..., object]
) -> None:
    """Value and limits at each level under PHE's column names; blank cells that are
    upstream errors are left to their own test."""
    check(got.value, num(row["value"]), what="value")
    for level in levels:
        interval, label = got.at(level), level_label(level)
        if row["area"] == "testdata_1976" and label == "99_8":
            assert row[f"lower{label}cl"] == row[f"upper{label}cl"] == ""
            continue
        check(interval.lower, num(row[f"lower{label}cl"]), what=f"lower{label}cl")
        check(interval.upper, num(row[f"upper{label}cl"]), what=f"upper{label}cl")
    assert got.statistic == row["statistic"]
    assert got.method == row["method"]


def independent_dsr(rows: Rows, area: str, multiplier: float) -> DsrResult:
    area_bands = bands(rows, area)
    return dsr(
        [num(b["count"]) for b in area_bands],
        [float(b["pop"]) for b in area_bands],
        [float(b["stdpop"]) for b in area_bands],
        BOTH,
        multiplier,
    )


def nonindependent_dsr(rows: Rows, area: str, multiplier: float) -> DsrResult:
    """Long format (band x frequency rows) to one frequency -> individuals map per band."""
    individuals: dict[int, dict[int, float | None]] = defaultdict(dict)
    people: dict[int, tuple[float, float]] = {}
    for row in rows:
        if row["area"] == area:
            band = int(row["ageband_order"])
            individuals[band][int(row["eventfreq"])] = num(row["unique_individuals"])
            pop_and_weight = (float(row["pop"]), float(row["stdpop"]))
            assert people.setdefault(band, pop_and_weight) == pop_and_weight
    order = sorted(people)
    return dsr_nonindependent(
        [individuals[b] for b in order],
        [people[b][0] for b in order],
        [people[b][1] for b in order],
        BOTH,
        multiplier,
    )


def test_every_dsr_and_isr_case_in_the_files_is_run(phe_csv: Callable[[str], Rows]) -> None:
    assert [r["case_id"] for r in phe_csv("dsr_expected.csv")] == DSR_CASES
    assert [r["case_id"] for r in phe_csv("isr_expected.csv")] == ISR_CASES + ISR_ZERO_POP_CASES


def test_esp2013_constant_matches_the_reference(phe_csv: Callable[[str], Rows]) -> None:
    rows = sorted(phe_csv("esp2013.csv"), key=lambda r: int(r["ageband_order"]))
    assert tuple((r["ageband"], int(r["esp2013"])) for r in rows) == ESP2013
    assert sum(ESP2013_WEIGHTS) == 100000
    for area in ("testdata_big", "testdata_small", "testdata_tiny"):
        weights = [int(b["stdpop"]) for b in bands(phe_csv("dsr_inputs.csv"), area)]
        assert tuple(weights) == ESP2013_WEIGHTS


@pytest.mark.parametrize("case_id", DSR_CASES)
def test_dsr_matches_the_reference(phe_csv: Callable[[str], Rows], case_id: str) -> None:
    row = case(phe_csv("dsr_expected.csv"), case_id)
    multiplier = float(row["multiplier"])
    if row["independent_events"] == "True":
        got = independent_dsr(phe_csv(row["input_file"]), row["area"], multiplier)
        check: Callable[..., object] = assert_close  # relative 1e-9
    else:
        got = nonindependent_dsr(phe_csv(row["input_file"]), row["area"], multiplier)

        # The non-independent sheet is rounded to 8 decimals, so relative 1e-9 cannot
        # hold on values near 1e4; compare absolutely to 1e-6 instead.
        def check(got: float | None, expected: float | None, what: str) -> None:
            assert_near(got, expected, 1e-6, what)

    assert got.total_count == float(row["total_count"])
    assert got.total_pop == float(row["total_pop"])
    assert_limits(got.estimate, row, BOTH, check)


@pytest.mark.parametrize("multiplier", sorted(UPSTREAM_1976_998))
def test_blanked_1976_limits_are_a_tenth_of_the_upstream_sheet(
    phe_csv: Callable[[str], Rows], multiplier: float
) -> None:
    got = independent_dsr(phe_csv("dsr_inputs.csv"), "testdata_1976", multiplier).estimate
    lower, upper = UPSTREAM_1976_998[multiplier]
    # The sheet has 2 decimals, so a tenth of it is good to 0.0005.
    assert_near(got.at(0.998).lower, lower / 10, 5e-4, "lower99_8cl")
    assert_near(got.at(0.998).upper, upper / 10, 5e-4, "upper99_8cl")


def isr(
    row: dict[str, str],
    inputs: Rows,
    reference: Rows,
    observed: float | None,
    levels: tuple[float, ...],
) -> IsrResult:
    """Call the function the case names; ``observed`` replaces the per-band counts."""
    counts = None if observed is not None else [num(b["count"]) for b in inputs]
    pops = [num(b["pop"]) for b in inputs]
    ref_counts = [num(b["refcount"]) for b in reference]
    ref_pops = [float(b["refpop"]) for b in reference]
    if row["function"] == "calculate_ISRate":
        per = float(row["multiplier"])
        return isr_rate(
            counts, pops, ref_counts, ref_pops, observed=observed, levels=levels, multiplier=per
        )
    times = float(row["refvalue"])
    return isr_ratio(
        counts, pops, ref_counts, ref_pops, observed=observed, levels=levels, refvalue=times
    )


def assert_isr_matches(got: IsrResult, row: dict[str, str], levels: tuple[float, ...]) -> None:
    assert_close(got.observed, num(row["observed"]), what="observed")
    assert_close(got.expected, num(row["expected"]), what="expected")
    assert_close(got.ref_rate, num(row["ref_rate"]), what="ref_rate")
    assert_limits(got.estimate, row, levels, assert_close)


@pytest.mark.parametrize("observed_from", ["counts", "observed_totals"])
@pytest.mark.parametrize("reference_from", ["columns", "vector"])
@pytest.mark.parametrize("case_id", ISR_CASES)
def test_isr_matches_the_reference(
    phe_csv: Callable[[str], Rows], case_id: str, reference_from: str, observed_from: str
) -> None:
    """Each case four ways: the reference as columns of the data (refpoptype "field") or
    as a separate table, and O from the counts or from ``observed_totals``."""
    row = case(phe_csv("isr_expected.csv"), case_id)
    inputs = bands(phe_csv(row["input_file"]), row["area"])
    reference = inputs
    if reference_from == "vector":
        reference = sorted(phe_csv("isr_reference.csv"), key=lambda r: int(r["ageband_order"]))
    observed = None
    if observed_from == "observed_totals":
        totals = {r["area"]: float(r["total_count"]) for r in phe_csv("isr_observed_totals.csv")}
        observed = totals[row["area"]]
    assert_isr_matches(isr(row, inputs, reference, observed, BOTH), row, BOTH)


@pytest.mark.parametrize("case_id", ISR_ZERO_POP_CASES)
def test_isr_with_a_zero_population_band_matches_the_reference(
    phe_csv: Callable[[str], Rows], case_id: str
) -> None:
    """Only 95% limits were published for these, so only 95% is asked for."""
    row = case(phe_csv("isr_expected.csv"), case_id)
    assert row["lower99_8cl"] == row["upper99_8cl"] == ""
    inputs = bands(phe_csv(row["input_file"]), row["area"])
    reference = sorted(phe_csv("isr_reference.csv"), key=lambda r: int(r["ageband_order"]))
    assert_isr_matches(isr(row, inputs, reference, None, (0.95,)), row, (0.95,))
