"""Closed periods, each period's gap, and which way of a gap is improvement."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gapwatch.core.gap_series import (
    closed_periods,
    gap_direction,
    gap_points,
    gap_value,
    open_period,
)
from gapwatch.core.indicators import CATALOGUE
from gapwatch.core.inequality import EthnicGap, GroupComparison, ImdGap
from gapwatch.core.report import Report
from gapwatch.core.stats.gaps import Limits
from gapwatch.core.windows import DAY_MS, HOUR_MS


def _ms(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


NOW = _ms("2026-11-27T15:00:00")  # a Friday


def test_a_day_is_closed_once_its_lateness_allowance_has_passed():
    days = closed_periods(NOW, "day", 6 * HOUR_MS, 3)
    assert days == [_ms("2026-11-24"), _ms("2026-11-25"), _ms("2026-11-26")]
    # at 05:00 with 6 hours' allowance, yesterday is still settling
    early = closed_periods(_ms("2026-11-27T05:00:00"), "day", 6 * HOUR_MS, 1)
    assert early == [_ms("2026-11-25")]
    assert open_period(NOW, "day") == _ms("2026-11-27")


def test_weeks_run_monday_to_sunday():
    weeks = closed_periods(NOW, "week", DAY_MS, 2)
    assert weeks == [_ms("2026-11-09"), _ms("2026-11-16")]
    assert open_period(NOW, "week") == _ms("2026-11-23")
    # on Tuesday with a day's allowance, last week (ended Sunday) is closed
    assert closed_periods(_ms("2026-12-01T12:00:00"), "week", DAY_MS, 1) == [_ms("2026-11-23")]
    with pytest.raises(ValueError):
        closed_periods(NOW, "day", 0, 0)


def _report(gap):
    return Report(groups=(), total=None, gap=gap, gap_methods=(), statistic_method="")


def _imd(absolute, ratio, sii):
    def lim(v):
        return Limits(v, None, None)

    return ImdGap("1", "5", 0.95, lim(absolute), lim(ratio), lim(sii), lim(None), "", None)


def test_each_period_gives_its_gap_by_measure():
    reports = [
        (2 * DAY_MS, _report(_imd(30.0, 1.5, -40.0))),
        (DAY_MS, _report(_imd(20.0, 1.3, None))),
    ]
    assert [p.value for p in gap_points(reports, "difference")] == [20.0, 30.0]
    assert [p.value for p in gap_points(reports, "ratio")] == [1.3, 1.5]
    assert [p.value for p in gap_points(reports, "sii")] == [None, -40.0]
    assert [p.period_start_ms for p in gap_points(reports, "sii")] == [DAY_MS, 2 * DAY_MS]
    with pytest.raises(ValueError, match="unknown IMD gap measure"):
        gap_value(reports[0][1], "slope")


def test_an_ethnic_gap_is_one_group_against_the_reference():
    gap = EthnicGap(
        "white",
        0.95,
        (
            GroupComparison("asian", Limits(5.0, None, None), Limits(1.1, None, None)),
            GroupComparison("black", Limits(12.0, None, None), Limits(1.4, None, None)),
        ),
    )
    assert gap_value(_report(gap), "difference", "black") == 12.0
    assert gap_value(_report(gap), "ratio", "asian") == 1.1
    with pytest.raises(ValueError, match="no comparison"):
        gap_value(_report(gap), "difference", "mixed")
    assert gap_value(_report(None), "difference") is None


def test_which_way_is_improvement():
    lower_better = CATALOGUE["emergency_admission_rate"]
    assert lower_better.improvement == "lower"
    assert gap_direction(lower_better, "difference") == "decrease"
    assert gap_direction(lower_better, "ratio") == "decrease"
    assert gap_direction(lower_better, "sii") == "increase"  # SII = least - most deprived
