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
    controlled_rate,
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
