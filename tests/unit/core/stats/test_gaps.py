"""Difference and ratio between two groups (MOVER)."""

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gapwatch.core.stats.gaps import GroupEstimate, difference, ratio

Z95 = 1.959963984540054


def wilson(x: int, n: int) -> GroupEstimate:
    """Wilson score limits written out here, so the test does not trust the code under test."""
    p = x / n
    spread = Z95 * math.sqrt(Z95 * Z95 + 4 * x * (1 - p))
    return GroupEstimate(
        p,
        (2 * x + Z95**2 - spread) / (2 * (n + Z95**2)),
        (2 * x + Z95**2 + spread) / (2 * (n + Z95**2)),
    )


def test_difference_of_wilson_intervals_is_newcombes_method_10():
    # Newcombe (1998), Statistics in Medicine 17:873, Table II: 56/70 - 48/80 = 0.2000,
    # method 10 (hybrid score) interval 0.0524 to 0.3339.
    gap = difference(wilson(56, 70), wilson(48, 80))
    assert gap.value == pytest.approx(0.2)
    assert gap.lower == pytest.approx(0.0524, abs=5e-5)
    assert gap.upper == pytest.approx(0.3339, abs=5e-5)


def test_ratio_of_large_groups_is_close_to_the_log_normal_interval():
    a, b = GroupEstimate(200.0, 188.0, 212.0), GroupEstimate(100.0, 94.0, 106.0)
    gap = ratio(a, b)
    se = math.hypot(math.log(212 / 188), math.log(106 / 94)) / (2 * Z95)
    assert gap.value == 2.0
    assert gap.lower == pytest.approx(2 * math.exp(-Z95 * se), rel=2e-3)
    assert gap.upper == pytest.approx(2 * math.exp(Z95 * se), rel=2e-3)


def test_missing_or_zero_reference_gives_missing_gap():
    assert ratio(GroupEstimate(1.0, 0.5, 2.0), GroupEstimate(0.0, 0.0, 3.0)).value is None
    assert difference(GroupEstimate(None, None, None), GroupEstimate(1.0, 0.5, 2.0)).value is None


def test_zero_numerator_group_has_ratio_zero_and_a_finite_upper_limit():
    gap = ratio(GroupEstimate(0.0, 0.0, 3.69), GroupEstimate(10.0, 4.8, 18.4))
    assert (gap.value, gap.lower) == (0.0, 0.0)
    assert gap.upper == pytest.approx(3.69 / 4.8)


@given(st.integers(1, 500), st.integers(1, 500), st.integers(0, 500), st.integers(0, 500))
def test_limits_contain_the_estimate(n1, n2, x1, x2):
    a, b = wilson(min(x1, n1), n1), wilson(min(x2, n2), n2)
    d = difference(a, b)
    assert d.lower is not None and d.upper is not None
    assert d.lower <= d.value <= d.upper
    r = ratio(a, b)
    if r.value is not None:
        assert r.lower is None or r.lower <= r.value + 1e-12
        assert r.upper is None or r.upper >= r.value - 1e-12
