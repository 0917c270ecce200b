import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gapwatch.core.disclosure import (
    SUPPRESSED,
    Controlled,
    ControlledCount,
    control,
    control_count,
    control_tables,
    controlled_rate,
    feasible,
    reader_bounds,
)


@pytest.mark.parametrize(
    ("n", "display"),
    [
        (0, "0"),
        (1, "*"),
        (5, "*"),
        (7, "*"),
        (8, "10"),
        (9, "10"),
        (10, "10"),
        (12, "10"),
        (13, "15"),
        (17, "15"),
        (18, "20"),
        (1234, "1235"),
        (1238, "1240"),
    ],
)
def test_counts_of_one_to_seven_are_suppressed_and_the_rest_rounded_to_five(n, display):
    controlled = control_count(n)
    assert controlled.display == display
    assert controlled.suppressed is (display == SUPPRESSED)
    assert controlled.value == (None if display == SUPPRESSED else int(display))


def test_a_negative_count_is_an_error():
    with pytest.raises(ValueError, match=">= 0"):
        control_count(-1)


def test_rates_come_from_the_rounded_count_and_vanish_with_it():
    assert controlled_rate(control_count(12), 1000.0, 100_000) == pytest.approx(1000.0)
    assert controlled_rate(control_count(6), 1000.0, 100_000) is None
    assert controlled_rate(control_count(0), 1000.0) == 0.0
    assert controlled_rate(control_count(20), None) is None
    assert controlled_rate(control_count(20), 0.0) is None


def test_without_a_total_only_the_primary_rule_applies():
    out = control({"a": 3, "b": 40})
    assert out.total is None
    assert [c.display for c in out.cells.values()] == ["*", "40"]
    assert out.suppressed == ("a",)


def test_a_published_total_next_to_one_suppressed_cell_hides_the_next_smallest():
    out = control({"a": 3, "b": 40, "c": 21, "d": 0}, 64)
    assert {k: c.display for k, c in out.cells.items()} == {"a": "*", "b": "40", "c": "*", "d": "0"}
    assert out.cells["c"].secondary and not out.cells["a"].secondary
    assert out.total == ControlledCount(65, "65")


def test_the_bounds_attack_from_the_docstring_is_stopped():
    # 1, 8, 8 (total 17) would publish *, 10, 10, 15 and pin the * to 1.
    out = control({"a": 1, "b": 8, "c": 8}, 17)
    assert out.suppressed == ("a", "b")


def test_a_total_of_only_small_cells_is_suppressed():
    # Twelve cells of 1 (total 12 -> "10") would pin every cell to 1.
    out = control({str(i): 1 for i in range(12)}, 12)
    assert out.total is not None and out.total.suppressed and out.total.secondary


def test_a_small_total_is_suppressed_by_the_primary_rule():
    out = control({"a": 3, "b": 0}, 3)
    assert out.total is not None and out.total.suppressed and not out.total.secondary
    assert out.cells["b"].display == "0"


def test_no_suppressed_cell_means_no_secondary_suppression():
    out = control({"a": 10, "b": 0, "c": 13}, 23)
    assert out.suppressed == ()
    assert out.total == ControlledCount(25, "25")


counts = st.one_of(st.integers(0, 12), st.integers(0, 200), st.integers(0, 5000))
cell_sets = st.dictionaries(st.text("abcdefgh", min_size=1, max_size=3), counts, max_size=12)


def _published(out: Controlled) -> list[ControlledCount]:
    return [*out.cells.values(), *([out.total] if out.total else [])]


@settings(max_examples=400, deadline=None)
@given(cell_sets, st.booleans())
def test_no_published_count_is_small_and_every_one_is_a_multiple_of_five(cells, with_total):
    out = control(cells, sum(cells.values()) if with_total else None)
    assert set(out.cells) == set(cells)
    for c in _published(out):
        if c.suppressed:
            assert c.display == SUPPRESSED
            continue
        assert c.value is not None
        assert not 1 <= c.value <= 7
        assert c.value % 5 == 0
        assert c.display == str(c.value)
        assert c.value >= 0
    for key, n in cells.items():
        shown = out.cells[key]
        if 1 <= n <= 7:
            assert shown.suppressed
        elif not shown.suppressed:
            assert shown.value is not None and abs(shown.value - n) <= 2


def _bounds(c: ControlledCount) -> tuple[float, float]:
    """What a reader can say about the true count behind a published one, from the rule
    alone: ``*`` is at least 1 (it may be a secondary cell of any size), ``0`` is 0, and
    a rounded count r is within 2 of r and at least 8."""
    if c.value is None:
        return 1, math.inf
    if c.value == 0:
        return 0, 0
    return max(c.value - 2, 8), c.value + 2


@settings(max_examples=1500, deadline=None)
@given(cell_sets)
def test_differencing_a_published_total_never_pins_down_a_small_cell(cells):
    total = sum(cells.values())
    out = control(cells, total)
    if out.total is None or out.total.suppressed:
        return  # no total: each * is only known to be at least 1
    t_lo, t_hi = _bounds(out.total)
    bounds = {k: _bounds(c) for k, c in out.cells.items()}
    if any(out.cells[k].suppressed for k in cells):
        assert len(out.suppressed) >= 2, "total - sum(others) would isolate one cell"
    for key, n in cells.items():
        if not 1 <= n <= 7:
            continue
        others_lo = sum(lo for k, (lo, _) in bounds.items() if k != key)
        others_hi = sum(hi for k, (_, hi) in bounds.items() if k != key)
        feasible_lo = max(1, t_lo - others_hi)
        feasible_hi = min(7, t_hi - others_lo)
        assert feasible_hi - feasible_lo >= 1, (key, n, out)
        assert feasible_lo <= n <= feasible_hi


# Several breakdowns of the same events, controlled together (control_tables).


@pytest.mark.parametrize(
    ("shown", "bounds"),
    [
        (control_count(0), (0, 0)),
        (control_count(3), (1, math.inf)),
        (control_count(8), (8, 12)),
        (control_count(13), (13, 17)),
        (control_count(1234), (1233, 1237)),
    ],
)
def test_a_reader_bounds_each_published_count_by_the_rule(shown, bounds):
    assert reader_bounds(shown) == bounds


def test_feasible_bounds_pin_the_docstring_cell_when_only_rounding_is_applied():
    shown = {"a": control_count(1), "b": control_count(8), "c": control_count(8)}
    bounds = {k: reader_bounds(c) for k, c in shown.items()} | {
        "t": reader_bounds(control_count(17))
    }
    found = feasible(bounds, [("t", ("a", "b", "c"))])
    assert found["a"] == (1, 1)
    assert found["t"] == (17, 17)


def _imd(deciles: dict[str, int]) -> dict[str, dict[str, int]]:
    dec = {str(d): deciles.get(str(d), 0) for d in range(1, 11)} | {
        "unknown": deciles.get("unknown", 0)
    }
    quint = {str(q): dec[str(2 * q - 1)] + dec[str(2 * q)] for q in range(1, 6)}
    return {"imd_quintile": quint | {"unknown": dec["unknown"]}, "imd_decile": dec}


IMD_LINKS = (
    *(
        (("imd_quintile", str(q)), (("imd_decile", str(2 * q - 1)), ("imd_decile", str(2 * q))))
        for q in range(1, 6)
    ),
    (("imd_quintile", "unknown"), (("imd_decile", "unknown"),)),
)


def test_the_total_is_one_number_suppressed_in_every_table_if_one_needs_it():
    # Sex alone could show the total; the decile table (all small cells) hides it.
    tables = {"sex": {"female": 12, "male": 0}, "decile": {"1": 4, "2": 4, "3": 4}}
    out = control_tables(tables, 12)
    assert out.total.suppressed
    assert {t.total for t in out.tables.values()} == {out.total}
    assert out.tables["sex"].cells["female"].display == "10"


def test_a_cell_published_in_one_table_cannot_undo_suppression_in_another():
    # On its own the quintile table hides "unknown" (8) beside quintile 1 (1 event),
    # but the decile table shows the same 8 people: 22 - 13 - 8 would leave 1.
    tables = _imd({"1": 1, "3": 8, "4": 5, "unknown": 8})
    alone = control(tables["imd_quintile"], 22)
    assert alone.suppressed == ("1", "unknown")
    out = control_tables(tables, 22, IMD_LINKS)
    assert out.tables["imd_quintile"].suppressed == ("1", "2", "unknown")
    assert out.tables["imd_quintile"].cells["2"].secondary


def test_a_numerator_is_controlled_within_its_denominator():
    # Denominator deciles 8, 13, 1; the numerator is decile 3's 13. Shown on its own the
    # numerator's 15 says the denominator's hidden decile 3 is at least 13, which pins
    # its decile 4 to 1 (at most 22 - 8 - 13): within the denominator it is hidden.
    den = control_tables(_imd({"1": 8, "3": 13, "4": 1}), 22, IMD_LINKS)
    assert den.tables["imd_decile"].cells["3"].suppressed
    num_tables = _imd({"3": 13})
    alone = control_tables(num_tables, 13, IMD_LINKS)
    assert alone.tables["imd_decile"].cells["3"].display == "15"
    within = control_tables(num_tables, 13, IMD_LINKS, within=den)
    assert within.tables["imd_decile"].cells["3"].suppressed
    assert within.tables["imd_quintile"].cells["2"].suppressed


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(0, 15), min_size=11, max_size=11))
def test_control_tables_publishes_nothing_small_and_keeps_each_table_whole(deciles):
    tables = _imd(
        {d: n for d, n in zip([*map(str, range(1, 11)), "unknown"], deciles, strict=True)}
    )
    out = control_tables(tables, sum(deciles), IMD_LINKS)
    assert {k: set(t.cells) for k, t in out.tables.items()} == {
        k: set(t) for k, t in tables.items()
    }
    for ref, c in out.published().items():
        assert c.suppressed or not 1 <= (c.value or 0) <= 7, ref
