"""gapwatch.core.spc against NHSRplotthedots 0.2.2.

(a) The literal oracle ``tests.reference.nhsrplotthedots`` reproduces every output of the
R package published in its repository: serialized ``ptd_spc()`` results (full double
precision), printed snapshots (at their printed digits), the deviations vignette and the
rule helpers' unit-test vectors (fixtures in tests/reference/fixtures/).
(b) ``gapwatch.core.spc.spc`` equals the oracle, limits to 1e-9 and labels and point
types exactly, on edge cases and on seeded random series (lengths 1..120, rebase,
``fix_after``, screening on/off, all three improvement directions).

R is not available here; see the oracle's docstring for the R sources it follows.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from gapwatch.core.spc import Direction, SpcOptions, spc
from tests.reference import nhsrplotthedots as ptd
from tests.reference.r_serialize import data_frame_columns, unserialize_base64

FIXTURES = Path(__file__).resolve().parents[2] / "reference" / "fixtures"
TOLERANCE = 1e-9


def _load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return data


INTEGRATION = _load("nhsrplotthedots_integration_snapshots.json")
PRINTED = _load("nhsrplotthedots_printed_snapshots.json")
RULES = _load("nhsrplotthedots_rule_functions.json")


def _sig(x: float, digits: int) -> float:
    """``x`` as printed with ``digits`` significant digits (pillar/tibble style)."""
    return float(f"{x:.{digits}g}")


def _same(a: float, b: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return abs(a - b) <= TOLERANCE * max(1.0, abs(a), abs(b))


# --- (a) the oracle reproduces the R package's own outputs -------------------------------


def _integration_case(case: dict[str, Any]) -> tuple[dict[str, Any], list[bool] | None]:
    text = "".join(case["serialized_base64"])
    assert hashlib.sha256(text.encode()).hexdigest() == case["serialized_base64_sha256"]
    cols = {k: v.value for k, v in data_frame_columns(unserialize_base64(text)).items()}
    n = len(cols["y"])
    index = case["rebase_index"]
    return cols, None if index is None else [i == index for i in range(n)]


@pytest.mark.parametrize("case", INTEGRATION["cases"], ids=lambda c: c["name"])
def test_oracle_reproduces_serialized_ptd_spc_output_bit_for_bit(case: dict[str, Any]) -> None:
    cols, rebase = _integration_case(case)
    rows = ptd.ptd_spc(
        cols["y"],
        rebase=rebase,
        fix_after_n_points=case["fix_after_n_points"],
        improvement_direction=case["improvement_direction"],
        screen_outliers=case["screen_outliers"],
        warning_threshold=12,  # the snapshot's package version (see the fixture's caveats)
    )
    assert [r.mean_col for r in rows] == cols["mean"]
    assert [r.lpl for r in rows] == cols["lpl"]
    assert [r.upl for r in rows] == cols["upl"]
    assert all(_same(r.fix_y, v) for r, v in zip(rows, cols["fix_y"], strict=True))
    assert [float(r.rebase_group) for r in rows] == cols["rebase_group"]
    assert [r.relative_to_mean for r in rows] == cols["relative_to_mean"]
    assert [int(bool(r.outside_limits)) for r in rows] == cols["outside_limits"]
    assert [int(bool(r.close_to_limits)) for r in rows] == cols["close_to_limits"]
    assert [float(r.special_cause_flag) for r in rows] == cols["special_cause_flag"]
    assert [r.point_type for r in rows] == cols["point_type"]
    assert [int(r.short_group_warning) for r in rows] == cols["short_group_warning"]


@pytest.mark.parametrize("case", INTEGRATION["cases"], ids=lambda c: c["name"])
def test_gapwatch_reproduces_serialized_ptd_spc_output(case: dict[str, Any]) -> None:
    cols, rebase = _integration_case(case)
    chart = spc(
        cols["y"],
        case["improvement_direction"],
        rebase=rebase,
        options=SpcOptions(
            screen_outliers=case["screen_outliers"], fix_after=case["fix_after_n_points"]
        ),
    )
    for point, mean, lpl, upl in zip(
        chart.points, cols["mean"], cols["lpl"], cols["upl"], strict=True
    ):
        assert _same(point.limits.mean, mean)
        assert _same(point.limits.lpl, lpl)
        assert _same(point.limits.upl, upl)
    assert [p.point_type for p in chart.points] == cols["point_type"]
    assert [float(p.special_cause != "Common Cause") for p in chart.points] == cols[
        "special_cause_flag"
    ]


@pytest.mark.parametrize("case", PRINTED["glimpse"]["cases"], ids=lambda c: c["name"])
def test_oracle_reproduces_ptd_spc_standard_glimpse_at_7_digits(case: dict[str, Any]) -> None:
    y = list(PRINTED["rnorm_seed_123"])
    if case["set_y15"] is not None:
        y[14] = float(case["set_y15"])
    rows = ptd.ptd_spc(y, screen_outliers=case["screen_outliers"])
    digits = PRINTED["glimpse"]["significant_digits"]
    for column in ("mean_col", "lpl", "upl"):
        assert {_sig(getattr(r, column), digits) for r in rows} == {case[column]}
    rtm = case["relative_to_mean_prefix"]
    assert [r.relative_to_mean for r in rows[: len(rtm)]] == rtm
    outside = case["outside_limits_prefix"]
    assert [r.outside_limits for r in rows[: len(outside)]] == outside
    close = case["close_to_limits_prefix"]
    assert [r.close_to_limits for r in rows[: len(close)]] == close


@pytest.mark.parametrize("case", PRINTED["summary"]["cases"], ids=lambda c: c["name"])
def test_oracle_reproduces_ptd_spc_summary_at_3_digits(case: dict[str, Any]) -> None:
    start, stop = case["slice"]
    rows = ptd.ptd_spc(PRINTED["rnorm_seed_123"][start:stop])
    digits = PRINTED["summary"]["significant_digits"]
    for column in ("mean_col", "lpl", "upl"):
        assert _sig(getattr(rows[0], column), digits) == case[column]
    assert len(rows) == case["n"]
    assert sum(not r.special_cause_flag for r in rows) == case["common_cause"]
    improvement = sum(r.point_type == "special_cause_improvement" for r in rows)
    assert improvement == case["special_cause_improvement"]


@pytest.mark.parametrize(
    "case", PRINTED["deviations_vignette"]["cases"], ids=lambda c: f"screen={c['screen_outliers']}"
)
def test_oracle_reproduces_the_deviations_vignette(case: dict[str, Any]) -> None:
    data = PRINTED["deviations_vignette"]["data"]
    rows = ptd.ptd_spc(data, screen_outliers=case["screen_outliers"])
    for column in ("upl", "mean_col", "lpl"):
        assert round(getattr(rows[0], column), 2) == case[column]
    spike = case["special_cause_improvement_index"]
    assert rows[spike].point_type == "special_cause_improvement"
    assert {r.point_type for i, r in enumerate(rows) if i != spike} == {"common_cause"}


def test_oracle_reproduces_two_in_three_on_opposite_sides() -> None:
    case = PRINTED["two_in_three_opposite_sides"]
    rows = ptd.ptd_spc(case["data"])
    assert [r.point_type for r in rows[-2:]] == case["tail_point_type"]
    assert [r.close_to_limits for r in rows[-2:]] == [True, True]  # the case is exercised


_RULE_FUNCTIONS: dict[str, Callable[..., list[float]]] = {
    "ptd_seven_point_one_side_mean": ptd.ptd_seven_point_one_side_mean,
    "ptd_part_of_seven_trend": ptd.ptd_part_of_seven_trend,
    "ptd_seven_point_trend": ptd.ptd_seven_point_trend,
    "ptd_two_in_three": ptd.ptd_two_in_three,
    "part_of_two_in_three": lambda close, rtm: ptd.ptd_part_of_two_in_three(
        ptd.ptd_two_in_three(close, rtm), close
    ),
}


@pytest.mark.parametrize(
    "case", RULES["cases"], ids=lambda c: f"{c['fn']}{json.dumps(c['args'])[:40]}"
)
def test_oracle_reproduces_the_rule_helper_unit_tests(case: dict[str, Any]) -> None:
    args = [[float(x) for x in arg] for arg in case["args"]]
    assert _RULE_FUNCTIONS[case["fn"]](*args) == [float(x) for x in case["expected"]]


# --- (b) gapwatch.core.spc equals the oracle ------------------------------------------------


def _mismatches(
    values: Sequence[float],
    direction: Direction,
    rebase: Sequence[bool] | None = None,
    fix_after: int | None = None,
    screen: bool = True,
) -> list[str]:
    """Every difference between gapwatch and the oracle on one series, as text."""
    ref = ptd.ptd_spc(
        values,
        rebase=rebase,
        fix_after_n_points=fix_after,
        improvement_direction=direction,
        screen_outliers=screen,
    )
    got = spc(
        values,
        direction,
        rebase=rebase,
        options=SpcOptions(screen_outliers=screen, fix_after=fix_after),
    ).points
    if len(ref) != len(got):
        return [f"{len(got)} points, oracle {len(ref)}"]
    out = []
    for i, (r, g) in enumerate(zip(ref, got, strict=True)):
        lim = g.limits
        pairs = {
            "mean": (lim.mean, r.mean_col),
            "lpl": (lim.lpl, r.lpl),
            "upl": (lim.upl, r.upl),
            "lower_2sigma": (lim.lower_2sigma, r.nlpl),
            "upper_2sigma": (lim.upper_2sigma, r.nupl),
            "mean_moving_range": (lim.mean_moving_range, r.amr),
        }
        out += [f"[{i}] {k}={a!r} oracle {b!r}" for k, (a, b) in pairs.items() if not _same(a, b)]
        if g.special_cause != r.special_cause_type:
            out.append(f"[{i}] label={g.special_cause!r} oracle {r.special_cause_type!r}")
        if g.point_type != r.point_type:
            out.append(f"[{i}] point_type={g.point_type!r} oracle {r.point_type!r}")
        if lim.trial != r.short_group_warning:
            out.append(
                f"[{i}] trial={lim.trial} oracle short_group_warning={r.short_group_warning}"
            )
    return out


UP7 = [1.0, 2, 3, 4, 5, 6, 7]
EDGE_CASES: list[tuple[str, list[float], dict[str, Any]]] = [
    ("empty", [], {}),
    ("one point", [5.0], {}),
    ("two points", [1.0, 3.0], {}),
    ("constant integers, screened (amr 0 -> all ranges dropped)", [4.0] * 15, {}),
    ("constant integers, unscreened (limits collapse)", [4.0] * 15, {"screen": False}),
    ("rise then fall shares a point", [*UP7, 6, 5, 4, 3, 2, 1, 0], {}),
    ("fall then rise shares a point", [7.0, 6, 5, 4, 3, 2, 1, 2, 3, 4, 5, 6, 7], {}),
    ("a repeat breaks a trend", [1.0, 2, 3, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12], {}),
    ("trend crossing the mean", [5.0, 5, 5, 1, 2, 3, 4, 5, 6, 7, 5, 5, 5, 5], {}),
    ("points on the mean break a run", [1.0, 3] * 5 + [2.0] * 8 + [3.0] * 6 + [1.0] * 6, {}),
    ("eight above", [0.0] * 6 + [1.0] * 8 + [0.0] * 6 + [-1.0] * 2, {}),
    (
        "2-in-3 band next to an outside point",
        [0.0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 2.3, 9, 2.3, 0, 1],
        {},
    ),
    ("spike screened", [1.0, 2, 1, 2, 10, 1, 2, 1, 2, 1, 2, 1, 2, 1, 2, 1, 2, 1], {}),
    ("rebase at the first point", [1.0, 2, 3, 2, 1, 2, 3], {"rebase": [True] + [False] * 6}),
    ("rebase at every point", [1.0, 2, 3, 4], {"rebase": [True] * 4}),
    (
        "rebase splits a run",
        [0.0] * 5 + [1.0] * 5 + [5.0] * 3 + [6.0] * 5,
        {"rebase": [i == 10 for i in range(18)]},
    ),
    ("fix_after longer than the series", [3.0, 1, 4, 1, 5, 9, 2, 6], {"fix_after": 12}),
    (
        "fix_after then a shift",
        [1.0, 2, 1, 2, 1, 2, 1, 2, 1, 2, 1, 2] + [3.0] * 8,
        {"fix_after": 12},
    ),
]


@pytest.mark.parametrize("direction", ["increase", "decrease", "neutral"])
@pytest.mark.parametrize(("name", "values", "kwargs"), EDGE_CASES, ids=[c[0] for c in EDGE_CASES])
def test_edge_cases_match_the_oracle(
    name: str, values: list[float], kwargs: dict[str, Any], direction: Direction
) -> None:
    assert _mismatches(values, direction, **kwargs) == []


def _random_values(rng: random.Random, n: int, kind: str) -> list[float]:
    """Series shapes that reach every branch: continuous noise, small integers (ties,
    flat steps, points on the mean), decimals, spikes (screening), drifts (trends,
    shifts) and integer plateaus (zero moving ranges)."""
    if kind == "normal":
        return [rng.gauss(0, 1) for _ in range(n)]
    if kind == "small_integers":
        return [float(rng.randint(0, 4)) for _ in range(n)]
    if kind == "decimals":
        return [rng.randint(0, 30) / 10 for _ in range(n)]
    if kind == "spikes":
        return [rng.gauss(0, 1) + rng.choice([0.0] * 19 + [12.0, -12.0]) for _ in range(n)]
    if kind == "drift":
        level, out = 0.0, []
        for _ in range(n):
            level += rng.gauss(0.3, 1)
            out.append(level)
        return out
    if kind == "integer_plateaus":
        return [float(rng.choice([7, 7, 7, 7, 6, 8, 11])) for _ in range(n)]
    raise ValueError(kind)


KINDS = ("normal", "small_integers", "decimals", "spikes", "drift", "integer_plateaus")


def test_random_series_match_the_oracle() -> None:
    """10 seeded random series per length 1..120 (1,200 in all), cycling through the
    series shapes, rebase points, fix_after, screening and directions."""
    rng = random.Random(20240611)
    directions: tuple[Direction, ...] = ("increase", "decrease", "neutral")
    failures: list[str] = []
    for n in range(1, 121):
        for k in range(10):
            kind = KINDS[k % len(KINDS)]
            values = _random_values(rng, n, kind)
            rebase = [rng.random() < 0.04 for _ in range(n)] if k % 2 else None
            fix_after = rng.choice([None, None, 12, 13, 25])
            direction = directions[k % 3]
            screen = k % 4 != 3
            found = _mismatches(values, direction, rebase, fix_after, screen)
            if found:
                failures.append(
                    f"{kind} n={n} rebase={rebase and [i for i, r in enumerate(rebase) if r]} "
                    f"fix_after={fix_after} screen={screen} {direction}: {found[:3]}\n"
                    f"  values={values}"
                )
    assert failures == []


# Regression cases: gapwatch once computed the centre line as fsum(values) / n, rounded
# twice, and mislabelled the points below ("gapwatch" in the notes below is that version;
# core.spc now rounds the mean once, exactly). R's mean() (real_mean in
# R's src/main/summary.c: long-double sum, divide, then add the mean residual) returns the
# exactly rounded mean, e.g. exactly 0.1 for twelve 0.1s. A value equal to R's centre line
# has relative_to_mean 0 (ptd_spc_standard: sign(y - mean_col)), which breaks a run and,
# when the moving ranges are all 0, is not outside limits that collapse onto the mean.
MEAN_ROUNDING_CASES = [
    # [0.1] * 12: fsum/12 = 0.10000000000000002, R 0.1. Screened: amr = 0, every range
    # dropped, limits NaN; gapwatch puts all 12 points below its centre line
    # ("7 Points Below CL", concern when increase is good); R: 12 x "Common Cause".
    ("twelve 0.1s, screened", [0.1] * 12, {}),
    # Unscreened: limits collapse onto the centre line (amr 0); gapwatch: 12 x
    # "Below LCL"; R: y == upl == lpl, not outside, 12 x "Common Cause".
    ("twelve 0.1s, unscreened", [0.1] * 12, {"screen": False}),
    # A rate that settles: exact mean 0.7 (R), fsum/12 = 0.7000000000000001; gapwatch
    # labels the last seven points "7 Points Below CL", R "Common Cause".
    ("settles on its mean", [0.3, 1.1, 0.3, 0.7, 1.1, *[0.7] * 7], {}),
    # fix_after = 12 on a flat baseline of 3.3 (fsum/12 = 3.2999999999999994): gapwatch
    # calls the flat points above the centre line, R on it.
    ("flat baseline then noise", [3.3] * 12 + [3.3, 3.4, 3.3, 3.2, 3.3, 3.3], {"fix_after": 12}),
]


@pytest.mark.parametrize(
    ("name", "values", "kwargs"), MEAN_ROUNDING_CASES, ids=[c[0] for c in MEAN_ROUNDING_CASES]
)
def test_values_equal_to_the_mean_match_the_oracle(
    name: str, values: list[float], kwargs: dict[str, Any]
) -> None:
    assert _mismatches(values, "increase", **kwargs) == []
