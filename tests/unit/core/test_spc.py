"""Making Data Count XmR: NHSRplotthedots 0.2.2's documented examples and rule tests
(tests/testthat/test-ptd_calculate_point_type.R, vignettes/deviations.Rmd)."""

from __future__ import annotations

import math

import pytest

from gapwatch.core import spc as s
from gapwatch.core.spc import SpcOptions, assurance, point_type, spc, variation_icon, xmr_limits

# vignettes/deviations.Rmd: 18 daily points with one spike.
SPIKE = [1, 2, 1, 2, 10, 1, 2, 1, 2, 1, 2, 1, 2, 1, 2, 1, 2, 1]


def test_screened_limits_match_the_deviations_vignette():
    limits = xmr_limits(SPIKE)
    # 17 moving ranges: fifteen of 1, then 8 and 9; both >= 3.267 x 32/17 are dropped
    assert limits.mean == pytest.approx(35 / 18, rel=1e-12)
    assert limits.mean_moving_range == pytest.approx(1.0, rel=1e-12)
    assert limits.upl == pytest.approx(35 / 18 + 2.66, rel=1e-12)
    assert (round(limits.upl, 2), round(limits.mean, 2), round(limits.lpl, 2)) == (
        4.60,
        1.94,
        -0.72,
    )


def test_unscreened_limits_reproduce_the_excel_tool():
    limits = xmr_limits(SPIKE, SpcOptions(screen_outliers=False))
    assert limits.mean_moving_range == pytest.approx(32 / 17, rel=1e-12)
    assert (round(limits.upl, 2), round(limits.mean, 2), round(limits.lpl, 2)) == (
        6.95,
        1.94,
        -3.06,
    )
    assert limits.upper_2sigma == pytest.approx(35 / 18 + 2 * (2.66 / 3) * 32 / 17, rel=1e-12)


def test_the_spike_is_the_only_special_cause_and_an_improvement_when_higher_is_better():
    chart = spc(SPIKE, "increase")
    labels = [p.special_cause for p in chart.points]
    assert labels[4] == "Above UCL"
    assert labels[:4] + labels[5:] == ["Common Cause"] * 17
    assert chart.points[4].point_type == "special_cause_improvement"
    assert spc(SPIKE, "decrease").points[4].point_type == "special_cause_concern"
    assert spc(SPIKE, "neutral").points[4].point_type == "special_cause_neutral_high"
    assert chart.variation == "common_cause"  # the latest point decides the icon


def test_seven_point_one_side_mean():
    assert s._shift_ends([], 7) == []
    assert s._shift_ends([1] * 6, 7) == [0] * 6
    assert s._shift_ends([1] * 6 + [-1], 7) == [0] * 7
    assert s._shift_ends([1] * 8 + [-1], 7) == [0, 0, 0, 0, 0, 0, 1, 1, 0]
    assert s._shift_ends([-1] * 8 + [1], 7) == [0, 0, 0, 0, 0, 0, 1, 1, 0]


def test_part_of_seven():
    assert s._part_of([], 7) == []
    assert s._part_of([0] * 6, 7) == [False] * 6
    assert s._part_of([0] * 6 + [1, 0], 7) == [True] * 7 + [False]
    assert s._part_of([0] * 7 + [1, 0], 7) == [False] + [True] * 7 + [False]
    assert s._part_of([0] * 6 + [-1, 0], 7) == [True] * 7 + [False]
    assert s._part_of([0] * 7 + [-1, 0], 7) == [False] + [True] * 7 + [False]


def test_seven_point_trend():
    assert s._trend_ends([], 7) == []
    assert s._trend_ends(list(range(1, 7)), 7) == [0] * 6
    assert s._trend_ends([1, 2, 3, 3, 4, 5, 6], 7) == [0] * 7  # a repeat breaks it
    assert s._trend_ends(list(range(1, 8)), 7) == [0] * 6 + [1]
    assert s._trend_ends([2, *range(1, 8), 3], 7) == [0] * 7 + [1, 0]
    assert s._trend_ends(list(range(7, 0, -1)), 7) == [0] * 6 + [-1]
    assert s._trend_ends([2, *range(7, 0, -1), 3], 7) == [0] * 7 + [-1, 0]


@pytest.mark.parametrize(
    ("close", "side", "expected"),
    [
        ([1, 0, 1], [1, 1, 1], [1, 0, 1]),
        ([0, 1, 1], [1, 1, 1], [0, 1, 1]),
        ([1, 1, 0], [1, 1, 1], [1, 1, 0]),
        ([0, 0, 1, 0, 1, 0, 0], [1] * 7, [0, 0, 1, 0, 1, 0, 0]),
        ([0, 0, 1, 1, 0, 0, 0], [1] * 7, [0, 0, 1, 1, 0, 0, 0]),
        ([1, 0, 0, 1], [1] * 4, [0, 0, 0, 0]),
        ([1, 0, 0, 1, 1], [1] * 5, [0, 0, 0, 1, 1]),
        # opposite sides of the mean never make two in three
        ([1, 0, 1], [1, -1, 1], [0, 0, 0]),
        ([0, 1, 1], [1, -1, 1], [0, 0, 0]),
        ([0, 0, 1, 0, 1, 0, 0], [1, -1, 1, -1, 1, -1, 1], [0] * 7),
        ([0, 0, 1, 1, 0, 0, 0], [-1, 1, -1, 1, -1, 1, -1], [0] * 7),
    ],
)
def test_part_of_two_in_three(close, side, expected):
    assert s._two_in_three([bool(c) for c in close], side) == [bool(e) for e in expected]


def _limits(mean=0.0, amr=1.0):
    return s.Limits(
        mean,
        mean - 2.66 * amr,
        mean + 2.66 * amr,
        mean - s.NEAR_LIMIT,
        mean + s.NEAR_LIMIT,
        amr,
        30,
    )


def test_precedence_and_labels():
    limits = _limits()
    # outside beats trend; a rising trend crossing the mean; then a run below the mean
    values = [-0.5, -0.4, -0.3, -0.2, 0.1, 0.2, 3.0, -0.1, -0.2, -0.1, -0.3, -0.2, -0.1, -0.2]
    labels = s.special_cause_types(values, limits)
    assert labels[6] == "Above UCL"
    assert labels[:6] == ["7 Point Trend (Increasing)"] * 6
    assert labels[7:] == ["7 Points Below CL"] * 7
    two = s.special_cause_types([0.0, 1.9, 0.5, 2.0, 0.0], limits)
    assert two == [
        "Common Cause",
        "2 in 3 Above CL",
        "Common Cause",
        "2 in 3 Above CL",
        "Common Cause",
    ]


def test_two_in_three_variants():
    limits = _limits()
    values = [0.5, 1.9, 3.0, 0.5]  # one in the band, one beyond the process limit
    band = s.special_cause_types(values, limits, SpcOptions(two_in_three="band"))
    beyond = s.special_cause_types(values, limits, SpcOptions(two_in_three="beyond"))
    assert band == ["Common Cause", "Common Cause", "Above UCL", "Common Cause"]
    assert beyond == ["Common Cause", "2 in 3 Above CL", "Above UCL", "Common Cause"]


def test_run_length_is_configurable():
    limits = _limits()
    values = [0.1] * 6
    assert s.special_cause_types(values, limits) == ["Common Cause"] * 6
    assert (
        s.special_cause_types(values, limits, SpcOptions(run_length=6)) == ["6 Points Above CL"] * 6
    )


def test_rebase_starts_new_limits_and_no_rule_crosses_it():
    values = [1.0, 2.0] * 6 + [11.0, 12.0] * 6
    chart = spc(values, "decrease", rebase=[i == 12 for i in range(24)])
    first, second = chart.points[0].limits, chart.points[12].limits
    assert (first.mean, second.mean) == (1.5, 11.5)
    assert {p.period for p in chart.points} == {0, 1}
    assert all(p.special_cause == "Common Cause" for p in chart.points)
    assert first.trial and second.trial  # 12 points each: trial limits


def test_fixed_limits_judge_later_points():
    values = [1.0, 2.0] * 6 + [5.0]
    chart = spc(values, "increase", options=SpcOptions(fix_after=12))
    assert chart.points[-1].limits.mean == 1.5
    assert chart.points[-1].special_cause == "Above UCL"
    assert chart.variation == "improvement_high"
    with pytest.raises(ValueError, match="at least 12"):
        SpcOptions(fix_after=5)


def test_point_types_icons_and_assurance():
    assert point_type("7 Point Trend (Decreasing)", "decrease") == "special_cause_improvement"
    assert point_type("2 in 3 Below CL", "increase") == "special_cause_concern"
    assert point_type("Common Cause", "increase") == "common_cause"
    assert variation_icon("special_cause_concern", "decrease") == "concern_high"
    assert variation_icon("special_cause_improvement", "decrease") == "improvement_low"
    assert variation_icon("special_cause_neutral_low", "neutral") == "neutral_low"
    limits = _limits(mean=10.0)
    assert assurance(20.0, limits, "increase") == "consistent_fail"
    assert assurance(20.0, limits, "decrease") == "consistent_pass"
    assert assurance(0.0, limits, "increase") == "consistent_pass"
    assert assurance(limits.upl, limits, "increase") == "inconsistent"  # equality: hit and miss
    assert assurance(20.0, limits, "neutral") is None
    assert assurance(None, limits, "increase") is None


def test_one_point_has_no_limits_and_an_empty_series_no_icon():
    assert math.isnan(xmr_limits([3.0]).upl)
    assert spc([3.0], "increase").points[0].special_cause == "Common Cause"
    empty = spc([], "increase")
    assert empty.points == [] and empty.variation is None
