"""The public report under disclosure control: no count of 1 to 7 is ever published, not
even by combining breakdowns, and every value comes from the published counts.

``attack`` is the reader this guards against, written here independently of
``core.disclosure``'s own audit: it knows the rule and takes every breakdown's
published cells and the one published total as interval bounds (``*``: at least 1,
anything up to infinity, since primary and secondary suppression look the same; a
published ``c``: c-2 to c+2, and at least 8 since nothing smaller is shown; ``0``: 0).
Its first sweep is the plain attack (tighten the total from each breakdown's summed
bounds, then bound each cell by the total less the others); it then goes on through the
IMD quintile = two deciles identities, and a proportion's numerator <= denominator,
until nothing tightens. The API tests (tests/api/test_public_endpoints.py) use it too.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gapwatch.core.counting import read_count
from gapwatch.core.demographics import AGE_BANDS, ETHNIC_GROUPS, SEX_GROUPS, UNKNOWN
from gapwatch.core.disclosure import control, control_count, control_tables
from gapwatch.core.errors import StatisticsError
from gapwatch.core.group_stats import PER, ReportOptions
from gapwatch.core.indicators import BREAKDOWNS, CATALOGUE
from gapwatch.core.inequality import EthnicGap, ImdGap
from gapwatch.core.public_report import build_public_report, control_measure, links_between
from tests.conftest import tiny_reference_data

Ref = tuple[str, str]
TOTAL: Ref = ("total", "all")
Equation = tuple[Ref, tuple[Ref, ...]]
PersonCell = tuple[str, str, str, str]
"""(IMD decile, ethnic group, sex, age band) of a group of events."""

DECILES = BREAKDOWNS["imd_decile"]
STORED = ("imd_decile", "ethnic_group", "sex", "age_band")
YEARS = 28 / 365.25
FAST = ReportOptions(sii_repetitions=200)


# ------------------------------------------------------------------ the attacker


def interval(shown: str) -> list[float]:
    if shown == "*":
        return [1, math.inf]
    value = int(shown)
    return [0, 0] if value == 0 else [max(value - 2, 8), value + 2]


def equations(breakdowns: Mapping[str, Iterable[str]]) -> list[Equation]:
    """Each breakdown adds up to the total; IMD quintile q is deciles 2q-1 and 2q."""
    out: list[Equation] = [
        (TOTAL, tuple((by, g) for g in groups)) for by, groups in breakdowns.items()
    ]
    if "imd_quintile" in breakdowns and "imd_decile" in breakdowns:
        for q in range(1, 6):
            parts = (("imd_decile", str(2 * q - 1)), ("imd_decile", str(2 * q)))
            out.append((("imd_quintile", str(q)), parts))
        out.append((("imd_quintile", UNKNOWN), (("imd_decile", UNKNOWN),)))
    return out


def attack(
    published: Mapping[Ref, str],
    identities: Sequence[Equation],
    ceilings: Sequence[tuple[Ref, Ref]] = (),
) -> dict[Ref, tuple[float, float]]:
    """The tightest bounds the reader reaches on every published count; ``published``
    maps each count to its display. ``ceilings`` are (a, b) pairs with a <= b."""
    bounds = {ref: interval(shown) for ref, shown in published.items()}
    while True:
        before = {ref: tuple(b) for ref, b in bounds.items()}
        for whole, parts in identities:
            w = bounds[whole]
            w[0] = max(w[0], sum(bounds[p][0] for p in parts))
            w[1] = min(w[1], sum(bounds[p][1] for p in parts))
            for p in parts:
                others = [bounds[q] for q in parts if q != p]
                bounds[p][0] = max(bounds[p][0], w[0] - sum(o[1] for o in others))
                bounds[p][1] = min(bounds[p][1], w[1] - sum(o[0] for o in others))
        for small, big in ceilings:
            bounds[small][1] = min(bounds[small][1], bounds[big][1])
            bounds[big][0] = max(bounds[big][0], bounds[small][0])
        if {ref: tuple(b) for ref, b in bounds.items()} == before:
            return {ref: (b[0], b[1]) for ref, b in bounds.items()}


def pinned(
    published: Mapping[Ref, str],
    truth: Mapping[Ref, int],
    bounds: Mapping[Ref, tuple[float, float]],
) -> list[tuple[Ref, int]]:
    """Counts of 1 to 7 the reader pins to one value (after checking what every test
    needs: nothing of 1 to 7 is shown, and the attack is sound)."""
    found = []
    for ref, shown in published.items():
        n = truth[ref]
        lo, hi = bounds[ref]
        assert lo <= n <= hi, f"unsound attack on {ref}: {n} not in [{lo}, {hi}]"
        if shown != "*":
            assert not 1 <= int(shown) <= 7, (ref, shown)
            assert int(shown) % 5 == 0 and abs(int(shown) - n) <= 2, (ref, shown, n)
            assert not (1 <= lo and hi <= 7), f"{ref} shown as {shown} but known small"
        elif 1 <= n <= 7 and lo == hi:
            found.append((ref, n))
        if 1 <= n <= 7:
            assert shown == "*", (ref, n, shown)
    return found


# ------------------------------------------------------------------ generated events


@st.composite
def person_cells(draw: st.DrawFn, max_cells: int = 30) -> dict[PersonCell, int]:
    """Events of one ICB by decile x ethnic group x sex x age band: few groups or many,
    mostly small cells, unknowns included."""

    def some(groups: Sequence[str]) -> list[str]:
        return draw(
            st.lists(st.sampled_from(groups), min_size=1, max_size=len(groups), unique=True)
        )

    deciles, ethnic, sexes, ages = (
        some(DECILES),
        some(ETHNIC_GROUPS),
        some(SEX_GROUPS),
        some(AGE_BANDS),
    )
    cell = st.tuples(*(st.sampled_from(g) for g in (deciles, ethnic, sexes, ages)))
    size = st.one_of(st.integers(1, 3), st.integers(1, 9), st.integers(1, 60))
    return draw(st.dictionaries(cell, size, max_size=max_cells))


def imd_heavy() -> st.SearchStrategy[dict[PersonCell, int]]:
    """Few small cells over a few deciles and unknown: where the quintile/decile
    identities bite."""
    cell = st.tuples(
        st.sampled_from(("1", "2", "3", "4", UNKNOWN)),
        st.sampled_from(("white", UNKNOWN)),
        st.sampled_from(("female", "male")),
        st.just("18-39"),
    )
    return st.dictionaries(cell, st.integers(1, 13), min_size=1, max_size=6)


def counts_of(cells: Mapping[PersonCell, int], measure: str) -> Counter[str]:
    """The store's fields for ``measure`` (what ``CountAccumulator`` writes)."""
    out: Counter[str] = Counter()
    for groups, n in cells.items():
        for by, g in zip(STORED, groups, strict=True):
            out[f"{measure}|{by}|{g}"] += n
    return out


@st.composite
def proportion_cells(draw: st.DrawFn) -> tuple[dict[PersonCell, int], dict[PersonCell, int]]:
    """(denominator, numerator) events, the numerator within the denominator cell by cell."""
    den = draw(st.one_of(person_cells(), imd_heavy()))
    num = {c: draw(st.integers(0, n)) for c, n in den.items()}
    return den, num


def truth_of(counts: Mapping[str, int], measure: str) -> dict[Ref, int]:
    out = {(by, g): read_count(counts, measure, by, g) for by in BREAKDOWNS for g in BREAKDOWNS[by]}
    out[TOTAL] = read_count(counts, measure, "total", "all")
    return out


def displays(counts: Mapping[str, int], measure: str, **kwargs: object) -> dict[Ref, str]:
    controlled = control_measure(counts, measure, tuple(BREAKDOWNS), **kwargs)
    return {ref: c.display for ref, c in controlled.published().items()}


# ------------------------------------------------------------------ the attacker has teeth


def test_rounding_alone_lets_the_reader_recover_a_small_cell():
    # 1, 8, 8 (total 17) publish as *, 10, 10 and 15: the * can only be 1.
    cells = {"a": 1, "b": 8, "c": 8}
    published = {("t", k): control_count(n).display for k, n in cells.items()}
    published[TOTAL] = control_count(17).display
    truth = {("t", k): n for k, n in cells.items()} | {TOTAL: 17}
    found = pinned(published, truth, attack(published, equations({"t": cells})))
    assert found == [(("t", "a"), 1)]


def test_secondary_suppression_stops_that_attack():
    cells = {"a": 1, "b": 8, "c": 8}
    out = control(cells, 17)
    published = {("t", k): c.display for k, c in out.cells.items()}
    assert out.total is not None
    published[TOTAL] = out.total.display
    truth = {("t", k): n for k, n in cells.items()} | {TOTAL: 17}
    assert pinned(published, truth, attack(published, equations({"t": cells}))) == []


NESTED = {"1": 1, "3": 8, "4": 5, UNKNOWN: 8}
"""Deciles whose quintile table, controlled on its own, hides quintile ``unknown`` while
the decile table shows the same people's count: quintile 1 (1 event) is then 22 less
quintile 2 (at least 13) less ``unknown`` (at least 8)."""


def _imd_tables(deciles: Mapping[str, int]) -> dict[str, dict[str, int]]:
    dec = {d: deciles.get(d, 0) for d in DECILES}
    quint = {str(q): dec[str(2 * q - 1)] + dec[str(2 * q)] for q in range(1, 6)}
    return {"imd_quintile": quint | {UNKNOWN: dec[UNKNOWN]}, "imd_decile": dec}


def test_controlling_each_breakdown_on_its_own_lets_the_reader_combine_them():
    tables = _imd_tables(NESTED)
    total = sum(NESTED.values())
    published = {TOTAL: control_count(total).display}
    for by, cells in tables.items():
        published |= {(by, k): c.display for k, c in control(cells, total).cells.items()}
    truth = {(by, k): n for by, cells in tables.items() for k, n in cells.items()} | {TOTAL: total}
    found = pinned(published, truth, attack(published, equations(tables)))
    assert (("imd_quintile", "1"), 1) in found


def test_controlling_the_breakdowns_together_stops_it():
    tables = _imd_tables(NESTED)
    total = sum(NESTED.values())
    out = control_tables(tables, total, links_between(tuple(tables)))
    published = {ref: c.display for ref, c in out.published().items()}
    truth = {(by, k): n for by, cells in tables.items() for k, n in cells.items()} | {TOTAL: total}
    assert pinned(published, truth, attack(published, equations(tables))) == []
    assert {t.total for t in out.tables.values()} == {out.total}


@pytest.mark.parametrize("joint", [False, True])
def test_over_every_small_imd_table_only_joint_control_keeps_small_counts_hidden(joint):
    """Every table of deciles 1, 3, 4 and unknown holding 0, 1, 2, 5, 8 or 13 events
    (1,296 of them): controlled one breakdown at a time, some leak a count through the
    quintile/decile identities; controlled together, none does."""
    leaks = []
    for values in itertools.product((0, 1, 2, 5, 8, 13), repeat=4):
        tables = _imd_tables(dict(zip(("1", "3", "4", UNKNOWN), values, strict=True)))
        total = sum(values)
        truth = {(by, k): n for by, cells in tables.items() for k, n in cells.items()}
        truth[TOTAL] = total
        if joint:
            out = control_tables(tables, total, links_between(tuple(tables)))
            published = {ref: c.display for ref, c in out.published().items()}
        else:
            published = {TOTAL: control_count(total).display}
            for by, cells in tables.items():
                published |= {(by, k): c.display for k, c in control(cells, total).cells.items()}
        leaks += pinned(published, truth, attack(published, equations(tables)))
    assert bool(leaks) is not joint, leaks[:5]


# ------------------------------------------------------------------ properties


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(person_cells(), imd_heavy()))
def test_no_breakdown_or_combination_of_breakdowns_reveals_a_small_count(cells):
    counts = counts_of(cells, "ed_arrival")
    truth = truth_of(counts, "ed_arrival")
    for by in BREAKDOWNS:
        assert sum(truth[(by, g)] for g in BREAKDOWNS[by]) == truth[TOTAL]
    published = displays(counts, "ed_arrival")
    assert pinned(published, truth, attack(published, equations(BREAKDOWNS))) == []


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(proportion_cells())
def test_a_numerator_and_its_denominator_together_reveal_no_small_count(pair):
    den_cells, num_cells = pair
    counts = counts_of(den_cells, "outpatient_outcome") + counts_of(num_cells, "outpatient_dna")
    den_truth = truth_of(counts, "outpatient_outcome")
    num_truth = truth_of(counts, "outpatient_dna")
    den = control_measure(counts, "outpatient_outcome", tuple(BREAKDOWNS))
    num = control_measure(counts, "outpatient_dna", tuple(BREAKDOWNS), within=den)
    # Both measures in one system: ("d:" table) for the denominator, num <= den per cell.
    published = {ref: c.display for ref, c in num.published().items()}
    published |= {(f"d:{t}", k): c.display for (t, k), c in den.published().items()}
    truth = num_truth | {(f"d:{t}", k): n for (t, k), n in den_truth.items()}
    identities = equations(BREAKDOWNS)
    identities += [
        ((f"d:{w[0]}", w[1]), tuple((f"d:{t}", k) for t, k in parts))
        for w, parts in equations(BREAKDOWNS)
    ]
    ceilings = [(ref, (f"d:{ref[0]}", ref[1])) for ref in num_truth]
    assert pinned(published, truth, attack(published, identities, ceilings)) == []


REPORT_CASES = st.sampled_from(["ed_attendance_rate", "outpatient_dna_proportion"])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(proportion_cells(), REPORT_CASES, st.sampled_from(tuple(BREAKDOWNS)))
def test_values_and_gaps_come_from_the_published_counts(pair, indicator_id, by):
    indicator = CATALOGUE[indicator_id]
    den_cells, num_cells = pair
    counts = counts_of(den_cells, indicator.denominator or "unused") + counts_of(
        num_cells, indicator.numerator
    )
    report = build_public_report(
        indicator, by, counts, tiny_reference_data().population, ("QOP",), YEARS, FAST
    )
    assert [g.group for g in report.groups] == list(BREAKDOWNS[by])
    suppressed = []
    for g in (*report.groups, report.total):
        value = g.stat.estimate.value
        assert g.numerator.value is None or not 1 <= g.numerator.value <= 7
        if g.suppressed:
            suppressed.append(g.group)
            assert value is None
            assert g.stat.estimate.intervals[0].lower is None
            continue
        assert g.numerator.value is not None
        if indicator.kind == "rate":
            assert g.denominator is None
            if g.population is None:
                assert value is None
            else:
                assert value is not None
                assert value * g.population * YEARS / PER == pytest.approx(g.numerator.value)
        else:
            assert g.denominator is not None and g.denominator.value is not None
            if g.denominator.value == 0:
                assert value is None
            else:
                assert value is not None
                assert value * g.denominator.value == pytest.approx(g.numerator.value)
    assert report.suppressed == tuple(suppressed)
    values = {g.group: g.stat.estimate.value for g in report.groups}
    hidden = set(report.suppressed)
    gap = report.gap
    if by in ("imd_quintile", "imd_decile"):
        most, least = "1", "5" if by == "imd_quintile" else "10"
        assert isinstance(gap, ImdGap)
        if {most, least} & hidden:
            assert gap.absolute.value is None and gap.ratio.value is None
        elif values[most] is not None and values[least] is not None:
            assert gap.absolute.value == pytest.approx(values[most] - values[least])
        if hidden - {UNKNOWN, "all"}:
            assert gap.sii.value is None and gap.rii.value is None
            assert "suppressed" in (gap.note or "")
    elif by == "ethnic_group":
        assert isinstance(gap, EthnicGap)
        for c in gap.comparisons:
            if {c.group, "white"} & hidden:
                assert c.difference.value is None and c.ratio.value is None
            elif values[c.group] is not None and values["white"] is not None:
                assert c.difference.value == pytest.approx(values[c.group] - values["white"])
    else:
        assert gap is None


# ------------------------------------------------------------------ what is not offered


def test_age_standardised_rates_are_not_published():
    with pytest.raises(StatisticsError, match="age-standardised rates are not published"):
        build_public_report(
            CATALOGUE["ed_attendance_rate"],
            "sex",
            {},
            tiny_reference_data().population,
            ("QOP",),
            YEARS,
            ReportOptions(standardised=True),
        )


def test_a_breakdown_the_indicator_lacks_is_an_error():
    with pytest.raises(StatisticsError, match="has no 'postcode' breakdown"):
        build_public_report(
            CATALOGUE["ed_attendance_rate"],
            "postcode",
            {},
            tiny_reference_data().population,
            ("QOP",),
            YEARS,
            FAST,
        )


def test_an_empty_area_publishes_zeros_and_no_suppression():
    report = build_public_report(
        CATALOGUE["outpatient_dna_proportion"],
        "sex",
        {},
        tiny_reference_data().population,
        ("QOP",),
        YEARS,
        FAST,
    )
    assert report.suppressed == ()
    assert {g.numerator.display for g in report.groups} == {"0"}
    assert report.total.stat.estimate.value is None  # 0 of 0: no proportion
