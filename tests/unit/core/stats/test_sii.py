"""SII/RII by hand-made cases: exact gradients, the Monte Carlo's invariants, validation."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gapwatch.core.errors import StatisticsError
from gapwatch.core.stats.poisson import count_limits
from gapwatch.core.stats.sii import SiiInput, SiiResult, sii, sii_by_group
from gapwatch.core.stats.sii_counts import _wilson95, sii_from_counts
from gapwatch.core.stats.sii_scale import ValueType
from gapwatch.core.stats.sii_validation import _positions

POPS = (1200.0, 800.0, 1000.0, 1500.0, 500.0)
FAST = 2_000  # enough replicates for tests that only look at point estimates or shape


def ranks(pops: tuple[float, ...]) -> list[float]:
    """Midpoint of each quantile's share of the cumulative population."""
    total = sum(pops)
    out, below = [], 0.0
    for pop in pops:
        out.append((below + pop / 2) / total)
        below += pop
    return out


def linear_rows(intercept: float, slope: float, se: float = 0.5) -> list[SiiInput]:
    return [
        SiiInput(q, pop, intercept + slope * b, se=se)
        for q, (pop, b) in enumerate(zip(POPS, ranks(POPS), strict=True), 1)
    ]


def cl_rows(values: list[float], spread: float = 0.05) -> list[SiiInput]:
    return [
        SiiInput(q, pop, v, lower=v * (1 - spread), upper=v * (1 + spread))
        for q, (pop, v) in enumerate(zip(POPS, values, strict=False), 1)
    ]


# --- point estimates ---------------------------------------------------------------


def test_a_perfectly_linear_gradient_gives_its_slope_as_the_sii() -> None:
    result = sii(linear_rows(70.0, 8.0), repetitions=FAST)
    assert result.sii == pytest.approx(8.0, rel=1e-12)
    assert result.intercept == pytest.approx(70.0, rel=1e-12)


def test_rii_is_the_fitted_ratio_of_rank_one_to_rank_zero() -> None:
    result = sii(linear_rows(70.0, 8.0), repetitions=FAST)
    assert result.rii == pytest.approx((70.0 + 8.0) / 70.0, rel=1e-12)


def test_a_negative_multiplier_flips_the_sii_and_inverts_the_rii() -> None:
    result = sii(linear_rows(70.0, 8.0), multiplier=-1, repetitions=FAST)
    assert result.sii == pytest.approx(-8.0, rel=1e-12)
    assert result.rii == pytest.approx(70.0 / 78.0, rel=1e-12)
    assert result.intercept == pytest.approx(70.0, rel=1e-12)  # unscaled, as PHE's


def test_the_multiplier_scales_the_sii_but_not_the_untransformed_intercept() -> None:
    result = sii(linear_rows(0.2, 0.1), multiplier=100, repetitions=FAST)
    assert result.sii == pytest.approx(10.0, rel=1e-12)
    assert result.intercept == pytest.approx(0.2, rel=1e-12)


def test_the_log_transform_fits_the_gradient_on_the_log_scale() -> None:
    values = [math.exp(1.0 + 0.5 * b) for b in ranks(POPS)]
    result = sii(cl_rows(values), value_type="rate", transform=True, repetitions=FAST)
    assert result.sii == pytest.approx(math.exp(1.5) - math.exp(1.0), rel=1e-12)
    assert result.rii == pytest.approx(math.exp(0.5), rel=1e-12)
    assert result.intercept == pytest.approx(math.exp(1.0), rel=1e-12)
    assert result.transform == "log"


def test_the_logit_transform_fits_the_gradient_on_the_logit_scale() -> None:
    def expit(x: float) -> float:
        return 1 / (1 + math.exp(-x))

    values = [expit(-1.0 + 0.8 * b) for b in ranks(POPS)]
    result = sii(cl_rows(values), value_type=2, transform=True, multiplier=100, repetitions=FAST)
    assert result.sii == pytest.approx((expit(-0.2) - expit(-1.0)) * 100, rel=1e-12)
    assert result.rii == pytest.approx(expit(-0.2) / expit(-1.0), rel=1e-12)
    assert result.intercept == pytest.approx(expit(-1.0) * 100, rel=1e-12)


def test_rii_is_none_when_not_asked_for() -> None:
    result = sii(linear_rows(70.0, 8.0), rii=False, repetitions=FAST)
    assert result.rii is None
    assert all(limits.rii is None for limits in result.limits)


# --- Monte Carlo limits ----------------------------------------------------------------


def test_the_same_seed_gives_identical_limits() -> None:
    rows = linear_rows(70.0, 8.0)
    assert sii(rows, seed=7) == sii(rows, seed=7)


def test_another_seed_gives_different_but_close_limits() -> None:
    rows = linear_rows(70.0, 8.0)
    a = sii(rows, seed=7).limits[0].sii
    b = sii(rows, seed=8).limits[0].sii
    assert (a.lower, a.upper) != (b.lower, b.upper)
    assert a.lower is not None and a.upper is not None
    assert b.lower is not None and b.upper is not None
    width = a.upper - a.lower
    assert abs(a.lower - b.lower) < 0.02 * width
    assert abs(a.upper - b.upper) < 0.02 * width


def test_a_linear_fit_has_the_textbook_normal_interval() -> None:
    """Identity g: the SII is linear in normal draws, so its 95% limits are about
    sii +/- 1.96 * sqrt(sum w_j^2 se_j^2); a cross-check of the simulation."""
    rows = linear_rows(70.0, 8.0, se=0.5)
    b = ranks(POPS)
    a = [p / sum(POPS) for p in POPS]
    mean_b = sum(ai * bi for ai, bi in zip(a, b, strict=True))
    var_b = sum(ai * (bi - mean_b) ** 2 for ai, bi in zip(a, b, strict=True))
    sd = math.sqrt(
        sum((ai * (bi - mean_b) / var_b * 0.5) ** 2 for ai, bi in zip(a, b, strict=True))
    )
    limits = sii(rows).limits[0].sii
    assert limits.lower == pytest.approx(8.0 - 1.959964 * sd, abs=0.03 * sd)
    assert limits.upper == pytest.approx(8.0 + 1.959964 * sd, abs=0.03 * sd)


MODES: list[dict[str, Any]] = [
    {"value_type": 0},
    {"value_type": 0, "multiplier": -1},
    {"value_type": 1},
    {"value_type": 1, "multiplier": -100},
    {"value_type": 1, "transform": True},
    {"value_type": 1, "transform": True, "multiplier": -1},
    {"value_type": 2},
    {"value_type": 2, "multiplier": -100},
    {"value_type": 2, "transform": True, "multiplier": 100},
    {"value_type": 2, "transform": True, "multiplier": -1},
]


def _mode_rows(mode: dict[str, Any]) -> list[SiiInput]:
    values = [0.30, 0.27, 0.22, 0.20, 0.15]
    if mode.get("transform"):
        return cl_rows(values, spread=0.1)
    return [
        SiiInput(q, pop, v, se=0.08 if mode["value_type"] else 0.02)
        for q, (pop, v) in enumerate(zip(POPS, values, strict=True), 1)
    ]


@pytest.mark.parametrize("mode", MODES, ids=str)
def test_limits_are_ordered_and_widen_with_the_level(mode: dict[str, Any]) -> None:
    result = sii(_mode_rows(mode), levels=(0.95, 0.998), repetitions=20_000, **mode)
    narrow, wide = result.at(0.95), result.at(99.8)
    for stat in ("sii", "rii"):
        n, w = getattr(narrow, stat), getattr(wide, stat)
        assert n.lower <= n.upper
        assert w.lower <= n.lower and n.upper <= w.upper
    lower, upper = narrow.sii.lower, narrow.sii.upper
    assert lower is not None and upper is not None
    assert lower <= result.sii <= upper


def test_a_rate_multiplier_between_0_and_1_reverses_the_limits_as_phe_does() -> None:
    """phe_sii 2.1.0 swaps the transformed rate limits when m < 1 (stats-methods §7.5):
    we keep that for parity and say so in the warnings."""
    values = [math.exp(1.0 + 0.5 * b) for b in ranks(POPS)]
    result = sii(cl_rows(values), value_type=1, transform=True, multiplier=0.5)
    limits = result.limits[0].sii
    assert limits.lower is not None and limits.upper is not None
    assert limits.lower > limits.upper
    assert any("reversed" in w for w in result.warnings)


def test_order_statistic_positions_follow_phe() -> None:
    assert _positions(0.95, 100_000) == (2499, 97499)
    assert _positions(0.998, 1_000) == (0, 998)
    # 1120 * (1 - 29/32) / 2 is exactly 52.5: half-to-even gives 52, as R's round does.
    assert _positions(0.90625, 1_120) == (51, 1067)
    with pytest.raises(StatisticsError, match="too few"):
        _positions(0.9995, 1_000)  # position round(0.25) = 0 is undefined upstream


# --- reliability -----------------------------------------------------------------------


def test_reliability_reports_a_mad_without_moving_the_limits() -> None:
    rows = linear_rows(70.0, 8.0)
    plain = sii(rows, repetitions=FAST)
    checked = sii(rows, repetitions=FAST, reliability=True)
    assert checked.limits[0].sii == plain.limits[0].sii
    assert checked.limits[0].rii == plain.limits[0].rii
    sii_mad, rii_mad = checked.limits[0].sii_mad, checked.limits[0].rii_mad
    assert sii_mad is not None and sii_mad > 0
    assert rii_mad is not None and rii_mad > 0
    assert plain.limits[0].sii_mad is None


def test_the_mad_shrinks_roughly_as_one_over_root_r() -> None:
    rows = linear_rows(70.0, 8.0)
    small = sii(rows, repetitions=1_000, reliability=True).limits[0].sii_mad
    large = sii(rows, repetitions=100_000, reliability=True).limits[0].sii_mad
    assert small is not None and large is not None
    assert 3 < small / large < 30  # 1/sqrt(R) predicts 10


def test_reliability_on_the_transformed_path_uses_back_transformed_limits() -> None:
    values = [math.exp(1.0 + 0.5 * b) for b in ranks(POPS)]
    result = sii(cl_rows(values), value_type=1, transform=True, reliability=True)
    limits = result.limits[0]
    assert limits.sii_mad is not None and 0 < limits.sii_mad < 0.05 * result.sii
    assert limits.rii_mad is not None and limits.rii_mad > 0


# --- metadata, warnings, groups --------------------------------------------------------


def test_metadata_follows_phe_wording() -> None:
    result = sii(linear_rows(70.0, 8.0), levels=(95, 99.8), repetitions=FAST)
    assert result.indicator_type == "normal"
    assert result.transform == "none"
    assert result.ci_confidence == "95%, 99.8%"
    assert result.ci_method == f"simulation {FAST} reps"
    assert result.warnings == ()
    with pytest.raises(KeyError):
        result.at(0.99)


def test_more_than_ten_quantiles_is_a_warning_not_an_error() -> None:
    rows = [SiiInput(q, 1000.0, 50.0 + q, se=1.0) for q in range(1, 12)]
    result = sii(rows, repetitions=FAST)
    assert any("11 quantiles" in w for w in result.warnings)


def test_the_quantile_set_is_global_and_incomplete_groups_are_dropped() -> None:
    full = linear_rows(70.0, 8.0)
    grouped = sii_by_group({"a": full, "b": full[:4], "c": full}, repetitions=FAST)
    assert grouped.dropped == ("b",)
    assert list(grouped.results) == ["a", "c"]
    assert grouped.results["a"] == grouped.results["c"]  # same seed, same rows
    assert grouped.warnings


# --- validation ------------------------------------------------------------------------

ROWS = linear_rows(70.0, 8.0)


def _replace(index: int, **changes: Any) -> list[SiiInput]:
    rows = list(ROWS)
    old = rows[index]
    fields = {
        "quantile": old.quantile,
        "population": old.population,
        "value": old.value,
        "se": old.se,
        "lower": old.lower,
        "upper": old.upper,
    }
    rows[index] = SiiInput(**{**fields, **changes})
    return rows


def _one_value(value: float, first: float) -> list[SiiInput]:
    return [SiiInput(q, 1000.0, first if q == 1 else value, se=0.1) for q in range(1, 6)]


ERRORS: list[tuple[str, list[SiiInput], dict[str, Any], str]] = [
    ("value type", ROWS, {"value_type": 3}, "value_type"),
    ("value type name", ROWS, {"value_type": "ratio"}, "value_type"),
    ("repetitions", ROWS, {"repetitions": 999}, "repetitions"),
    ("level", ROWS, {"levels": 0.5}, "confidence level"),
    ("level 1", ROWS, {"levels": 1.0}, "too few"),
    ("transform other", cl_rows([1, 2, 3, 4, 5]), {"transform": True}, "value_type"),
    ("transform se", ROWS, {"transform": True, "value_type": 1}, "not standard errors"),
    ("zero population", _replace(1, population=0.0), {}, "population"),
    ("missing population", _replace(1, population=None), {}, "population"),
    ("text population", _replace(1, population="many"), {}, "must be a number"),
    ("negative se", _replace(2, se=-0.1), {}, "standard error"),
    ("missing se", _replace(2, se=None), {}, "standard error"),
    ("infinite se", _replace(2, se=math.inf), {}, "standard error"),
    ("infinite population", _replace(2, population=math.inf), {}, "population"),
    ("negative seed", ROWS, {"seed": -1}, "seed"),
    ("missing value", _replace(2, value=None), {}, "value is missing"),
    ("nan value", _replace(2, value=math.nan), {}, "finite"),
    (
        "missing cl",
        cl_rows([1, 2, 3, 4, 5])[:4] + [SiiInput(5, 1.0, 5.0, lower=4.0)],
        {},
        "missing",
    ),
    (
        "upper below lower",
        [*cl_rows([1, 2, 3, 4]), SiiInput(5, 9.0, 5.0, lower=6.0, upper=4.0)],
        {},
        "below",
    ),
    ("proportion above 1", ROWS, {"value_type": 2}, r"not in \[0, 1\]"),
    ("proportion of 0", _one_value(0.2, 0.0), {"value_type": 2}, "no logit"),
    ("rate of 0", _one_value(5.0, 0.0), {"value_type": 1}, "log"),
    ("four quantiles", ROWS[:4], {}, "between 5 and 100"),
    ("duplicate quantile", [*ROWS, ROWS[0]], {}, "twice"),
    ("bool quantile", _replace(0, quantile=True), {}, "integer"),
]


@pytest.mark.parametrize(
    ("rows", "kwargs", "match"), [e[1:] for e in ERRORS], ids=[e[0] for e in ERRORS]
)
def test_invalid_input_is_a_statistics_error(
    rows: list[SiiInput], kwargs: dict[str, Any], match: str
) -> None:
    call = {"repetitions": FAST, **kwargs}
    with pytest.raises(StatisticsError, match=match):
        sii(rows, **call)


def test_more_than_100_quantiles_is_an_error() -> None:
    rows = [SiiInput(q, 1000.0, 50.0, se=1.0) for q in range(1, 102)]
    with pytest.raises(StatisticsError, match="between 5 and 100"):
        sii(rows, repetitions=FAST)


def test_a_count_of_zero_cannot_be_a_proportion_from_x() -> None:
    with pytest.raises(StatisticsError, match="x must be > 0"):
        SiiInput.from_count(1, 100.0, 0.0, se=0.1)
    assert SiiInput.from_count(1, 200.0, 50.0, se=0.1).value == 0.25


# --- from counts -----------------------------------------------------------------------

COUNTS = (40.0, 31.0, 25.0, 30.0, 8.0)


def test_rates_from_counts_use_poisson_limits_per_multiplier() -> None:
    got = sii_from_counts(COUNTS, POPS, kind="rate", multiplier=1000, repetitions=FAST)
    rows = []
    for q, (o, pop) in enumerate(zip(COUNTS, POPS, strict=True), 1):
        lower, upper, _ = count_limits(o, 0.95)
        assert lower is not None
        rows.append(
            SiiInput(q, pop, o / pop * 1000, lower=lower / pop * 1000, upper=upper / pop * 1000)
        )
    direct = sii(rows, value_type=ValueType.RATE, repetitions=FAST)
    assert (got.sii, got.rii, got.intercept) == pytest.approx(
        (direct.sii, direct.rii, direct.intercept), rel=1e-12
    )
    got_limits, direct_limits = got.limits[0], direct.limits[0]
    assert got_limits.sii.lower == pytest.approx(direct_limits.sii.lower, rel=1e-12)
    assert got_limits.sii.upper == pytest.approx(direct_limits.sii.upper, rel=1e-12)
    assert got.indicator_type == "rate"
    assert got.multiplier == 1.0  # the rate already carries the multiplier


def test_a_negative_rate_multiplier_flips_the_sii_sign() -> None:
    up = sii_from_counts(COUNTS, POPS, kind="rate", multiplier=1000, repetitions=FAST)
    down = sii_from_counts(COUNTS, POPS, kind="rate", multiplier=-1000, repetitions=FAST)
    assert down.sii == pytest.approx(-up.sii, rel=1e-12)


def test_proportions_from_counts_use_wilson_limits() -> None:
    assert _wilson95(65, 100) == pytest.approx((0.552544, 0.736358), abs=5e-7)
    got = sii_from_counts(COUNTS, POPS, kind="proportion", multiplier=100, repetitions=FAST)
    rows = [
        SiiInput(q, pop, x / pop, lower=_wilson95(x, pop)[0], upper=_wilson95(x, pop)[1])
        for q, (x, pop) in enumerate(zip(COUNTS, POPS, strict=True), 1)
    ]
    assert got == sii(rows, value_type=2, multiplier=100, repetitions=FAST)


def test_proportions_from_counts_can_have_their_own_denominators() -> None:
    dens = (100.0, 90.0, 80.0, 100.0, 50.0)
    got = sii_from_counts(COUNTS, POPS, kind="proportion", denominators=dens, repetitions=FAST)
    expected = sii(
        [
            SiiInput(q, p, x / n, se=0.1)
            for q, (x, p, n) in enumerate(zip(COUNTS, POPS, dens, strict=True), 1)
        ],
        value_type=2,
        repetitions=FAST,
    )
    assert got.sii == pytest.approx(expected.sii, rel=1e-12)


@pytest.mark.parametrize("kind", ["rate", "proportion"])
def test_a_zero_count_makes_the_sii_unavailable(kind: Any) -> None:
    with pytest.raises(StatisticsError, match="no events"):
        sii_from_counts((4.0, 0.0, 3.0, 2.0, 1.0), POPS, kind=kind, repetitions=FAST)


@pytest.mark.parametrize(
    ("counts", "pops", "kwargs", "match"),
    [
        ((1.0, 2.0), POPS, {"kind": "rate"}, "equal lengths"),
        (COUNTS, POPS, {"kind": "rate", "multiplier": 0}, "non-zero"),
        (COUNTS, POPS, {"kind": "ratio"}, "kind"),
        ((1.0, 2.0, 3.0, 4.0, 500.0), POPS, {"kind": "proportion"}, "no logit"),
        ((1.0, 2.0, 3.0, 4.0, 501.0), POPS, {"kind": "proportion"}, "between 0 and"),
        ((1.0, -2.0, 3.0, 4.0, 5.0), POPS, {"kind": "rate"}, ">= 0"),
        (COUNTS, (1.0, 0.0, 1.0, 1.0, 1.0), {"kind": "rate"}, "population"),
    ],
)
def test_bad_counts_are_statistics_errors(
    counts: tuple[float, ...], pops: tuple[float, ...], kwargs: dict[str, Any], match: str
) -> None:
    with pytest.raises(StatisticsError, match=match):
        sii_from_counts(counts, pops, repetitions=FAST, **kwargs)


# --- properties ------------------------------------------------------------------------

quantile_rows = st.lists(
    st.tuples(
        st.floats(min_value=1.0, max_value=1e6),  # population
        st.floats(min_value=-100.0, max_value=100.0),  # value
    ),
    min_size=5,
    max_size=12,
)


def _rows(pairs: list[tuple[float, float]], scale: float = 1.0) -> list[SiiInput]:
    return [SiiInput(q, pop * scale, v, se=1.0) for q, (pop, v) in enumerate(pairs, 1)]


def _close(a: float, b: float, pairs: list[tuple[float, float]]) -> bool:
    size = max(abs(v) for _, v in pairs) + 1.0
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9 * size)


def _fast(rows: list[SiiInput]) -> SiiResult:
    return sii(rows, repetitions=1_000, rii=False)


@settings(max_examples=60, deadline=None)
@given(quantile_rows, st.floats(min_value=1e-3, max_value=1e3))
def test_point_estimates_ignore_a_common_population_scale(
    pairs: list[tuple[float, float]], scale: float
) -> None:
    base, scaled = _fast(_rows(pairs)), _fast(_rows(pairs, scale))
    assert _close(base.sii, scaled.sii, pairs)
    assert _close(base.intercept, scaled.intercept, pairs)


@settings(max_examples=60, deadline=None)
@given(quantile_rows)
def test_reversing_the_order_of_the_quantiles_flips_the_sii(
    pairs: list[tuple[float, float]],
) -> None:
    forward, backward = _fast(_rows(pairs)), _fast(_rows(pairs[::-1]))
    assert _close(backward.sii, -forward.sii, pairs)
