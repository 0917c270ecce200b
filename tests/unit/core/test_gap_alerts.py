"""Alert state for one gap series: fire on a concerning special cause, resolve on common
cause, never from trial limits, and no repeat delivery while nothing changes."""

from __future__ import annotations

import pytest

from gapwatch.core.gap_alerts import AlertKey, evaluate
from gapwatch.core.spc import spc
from gapwatch.core.windows import DAY_MS

KEY = AlertKey("QOP", "emergency_admission_rate", "imd_quintile", "difference")
METHOD = "NHSRplotthedots 0.2.2 (two-in-three: band; screened)"
STABLE = [10.0, 11.0] * 10  # 20 points, mean 10.5, limits 10.5 +/- 2.66


def _chart(values):
    return spc(values, "decrease"), [i * DAY_MS for i in range(len(values))]


def test_a_widening_gap_fires_once_then_resolves():
    chart, starts = _chart([*STABLE, 20.0])  # above the upper limit: concern (lower is better)
    alert, change = evaluate(None, KEY, chart, starts, 1_000, METHOD)
    assert change == "new" and alert is not None
    assert (alert.id, alert.state, alert.rule, alert.first_seen_ms) == (
        "gap:QOP:emergency_admission_rate:imd_quintile:difference",
        "firing",
        "Above UCL",
        1_000,
    )
    assert alert.evidence[-1].value == 20.0 and alert.evidence[-1].point_type == (
        "special_cause_concern"
    )
    assert len(alert.evidence) == 13

    again, change = evaluate(alert, KEY, chart, starts, 2_000, METHOD)
    assert change is None and again is not None
    assert (again.first_seen_ms, again.last_seen_ms) == (1_000, 2_000)

    calm, starts2 = _chart([*STABLE, 20.0, 10.0])
    resolved, change = evaluate(again, KEY, calm, starts2, 3_000, METHOD)
    assert change == "resolved" and resolved is not None
    assert (resolved.state, resolved.resolved_ms, resolved.first_seen_ms) == (
        "resolved",
        3_000,
        1_000,
    )

    back, change = evaluate(resolved, KEY, chart, starts, 4_000, METHOD)
    assert change == "new" and back is not None and back.first_seen_ms == 4_000


def test_a_change_of_rule_on_a_firing_alert_is_an_update():
    chart, starts = _chart([*STABLE, 20.0])
    alert, _ = evaluate(None, KEY, chart, starts, 1_000, METHOD)
    shifted, starts2 = _chart([*STABLE, *[11.0, 11.5, 11.2, 11.4, 11.1, 11.3, 11.6]])
    assert shifted.points[-1].special_cause == "7 Points Above CL"
    updated, change = evaluate(alert, KEY, shifted, starts2, 2_000, METHOD)
    assert change == "updated" and updated is not None and updated.rule == "7 Points Above CL"


def test_improvements_and_trial_limits_do_not_fire():
    better, starts = _chart([*STABLE, 1.0])  # far below: improvement when lower is better
    assert evaluate(None, KEY, better, starts, 1, METHOD) == (None, None)
    short, starts = _chart([10.0, 11.0] * 5 + [20.0])  # 11 points: trial limits
    assert short.points[-1].point_type == "special_cause_concern"
    assert evaluate(None, KEY, short, starts, 1, METHOD) == (None, None)


def test_one_period_start_per_point():
    chart, _ = _chart(STABLE)
    with pytest.raises(ValueError):
        evaluate(None, KEY, chart, [0], 1, METHOD)
