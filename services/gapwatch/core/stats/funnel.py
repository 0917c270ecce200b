"""Funnel plots, part 1: significance against a benchmark (stats-methods §8).

England's funnel-plot labels (PHEindicatormethods 2.1.0 ``assign_funnel_significance``).
A funnel asks whether a unit differs from a benchmark by more than chance allows at its
size, so small units need a bigger departure than large ones. Two bands are used
throughout: 2 sigma (two-sided 95%, a one-sided tail of 0.025) and 3 sigma (99.8%, a tail
of 0.001). Those tails name the significance labels, e.g. ``"High (0.001)"``.

- Proportions compare ``x/n`` with the Wilson-score funnel around ``p̄ = Σx/Σn``.
- Ratios (observed/expected) compare 1 with the Poisson limits of ``O/E``.
- Rates compare ``r̄ = ΣO/Σd`` with the Poisson limits of ``O/d``, where ``d`` is a
  denominator derived from the published rate (a DSR has no plain population).

This module holds what labelling a unit needs: the averages, derived denominators, the
Wilson bound, the labels and the input checks. The limit tables a chart draws are in
``funnel_limits``, which builds on these (never the other way round); they are apart
because reports only need the labels, and the two together were twice the module guide.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Final, Literal

from scipy.special import ndtri

from gapwatch.core.errors import StatisticsError
from gapwatch.core.stats.poisson import count_limits

__all__ = [
    "DSR_MIN_EVENTS",
    "RateType",
    "Side",
    "Significance",
    "check_count",
    "check_positive",
    "derived_denominator",
    "derived_denominators",
    "proportion_average",
    "proportion_funnel_bound",
    "proportion_significance",
    "proportion_significances",
    "rate_average",
    "rate_significance",
    "rate_significances",
    "ratio_significance",
    "ratio_significances",
    "same_length",
]

Significance = Literal[
    "High (0.001)",
    "High (0.025)",
    "Low (0.001)",
    "Low (0.025)",
    "Not significant",
    "Not applicable for events less than 10 for dsrs",
]
RateType = Literal["dsr", "crude"]
Side = Literal["low", "high"]

DSR_MIN_EVENTS: Final = 10
"""A DSR from fewer events is not published (§5), so it gets no significance either."""

_TAILS: Final = (0.001, 0.025)
"""One-sided tails of the 3 sigma (99.8%) and 2 sigma (95%) bands: the order in which a
unit is tested, so it gets the stronger label when it is outside both."""

_LEVELS: Final = {0.025: 0.95, 0.001: 0.998}
"""Two-sided confidence level matching each one-sided tail."""

_NOT_APPLICABLE: Final = "Not applicable for events less than 10 for dsrs"


# --- validation -----------------------------------------------------------------------


def _finite(value: float, what: str) -> float:
    if not math.isfinite(value):
        raise StatisticsError(f"{what} must be a finite number, got {value!r}")
    return float(value)


def same_length(first: Sequence[object], second: Sequence[object], what: str) -> None:
    """Paired inputs must match unit for unit, and a funnel needs at least one unit."""
    if len(first) != len(second):
        raise StatisticsError(f"{what} differ in length: {len(first)} and {len(second)}")
    if not first:
        raise StatisticsError(f"{what} are empty: a funnel needs at least one unit")


def _check_proportion(x: float, n: float) -> None:
    _finite(x, "a numerator")
    _finite(n, "a denominator")
    if x < 0 or n <= 0 or x > n:
        raise StatisticsError(f"a proportion needs 0 <= x <= n and n > 0, got x={x!r}, n={n!r}")


def check_count(observed: float) -> None:
    """An observed count is finite and >= 0 (not necessarily whole)."""
    if not _finite(observed, "an observed count") >= 0:
        raise StatisticsError(f"an observed count must be >= 0, got {observed!r}")


def check_positive(value: float, what: str) -> None:
    """``value`` is finite and > 0; ``what`` names it in the error."""
    if not _finite(value, what) > 0:
        raise StatisticsError(f"{what} must be > 0, got {value!r}")


# --- significance ---------------------------------------------------------------------


def proportion_funnel_bound(mean_p: float, population: float, tail: float, side: Side) -> float:
    """The proportion at which a unit of size ``population`` leaves the funnel.

    Algebraically ``p̄ ∓ z·√(p̄(1 − p̄)/N)`` with ``z = Φ⁻¹(1 − tail)``; it is evaluated as
    the package's quadratic (the Wilson score bound set equal to ``p̄``) so results agree
    to the last bit at the boundaries. Unclamped, as a fraction (no multiplier).
    """
    z2 = float(ndtri(1 - tail)) ** 2
    n = population
    a = n / z2 + 1
    k = 1 / z2 + 1 / n
    disc = (mean_p * a) ** 2 - k * mean_p * (n * (mean_p * (n / z2 + 2) - 1) + z2 * (mean_p - 1))
    root = math.sqrt(max(disc, 0.0))  # only rounding makes it negative (p̄ = 0 or 1)
    return (mean_p * a - root) / (k * n) if side == "low" else (mean_p * a + root) / (k * n)


def proportion_average(numerators: Sequence[float], denominators: Sequence[float]) -> float:
    """The funnel's centre ``p̄ = Σx/Σn``: pooled, so big units weigh more, as PHE does."""
    same_length(numerators, denominators, "numerators and denominators")
    for x, n in zip(numerators, denominators, strict=True):
        _check_proportion(x, n)
    return math.fsum(numerators) / math.fsum(denominators)


def proportion_significance(x: float, n: float, mean_p: float) -> Significance:
    """Label ``x/n`` against the benchmark proportion ``mean_p`` (a fraction in [0, 1]).

    Checked low before high and 3 sigma before 2 sigma, the package's order.
    """
    _check_proportion(x, n)
    if not 0 <= _finite(mean_p, "the benchmark proportion") <= 1:
        raise StatisticsError(f"the benchmark proportion must be in [0, 1], got {mean_p!r}")
    p = x / n
    if p < proportion_funnel_bound(mean_p, n, 0.001, "low"):
        return "Low (0.001)"
    if p < proportion_funnel_bound(mean_p, n, 0.025, "low"):
        return "Low (0.025)"
    if p > proportion_funnel_bound(mean_p, n, 0.001, "high"):
        return "High (0.001)"
    if p > proportion_funnel_bound(mean_p, n, 0.025, "high"):
        return "High (0.025)"
    return "Not significant"


def proportion_significances(
    numerators: Sequence[float], denominators: Sequence[float]
) -> list[Significance]:
    """Label every unit against the pooled average of all of them."""
    mean_p = proportion_average(numerators, denominators)
    return [
        proportion_significance(x, n, mean_p) for x, n in zip(numerators, denominators, strict=True)
    ]


_HIGH: Final[dict[float, Significance]] = {0.001: "High (0.001)", 0.025: "High (0.025)"}
_LOW: Final[dict[float, Significance]] = {0.001: "Low (0.001)", 0.025: "Low (0.025)"}


def _poisson_significance(observed: float, denominator: float, benchmark: float) -> Significance:
    """Label ``O/denominator`` against ``benchmark`` using the Poisson limits of ``O``.

    Exact limits below 10 events and Byar from 10 (``count_limits``), so a ratio or rate
    is judged by the same interval PHE publishes for it. High before low, 3 sigma first.
    """
    limits = {tail: count_limits(observed, _LEVELS[tail]) for tail in _TAILS}
    for tail in _TAILS:
        lower = limits[tail][0]
        if lower is not None and benchmark < lower / denominator:
            return _HIGH[tail]
    for tail in _TAILS:
        if benchmark > limits[tail][1] / denominator:
            return _LOW[tail]
    return "Not significant"


def ratio_significance(observed: float, expected: float) -> Significance:
    """Label an observed/expected ratio: significant when its interval excludes 1.

    The benchmark is built into ``expected`` (expected events at the benchmark's rates).
    """
    check_count(observed)
    check_positive(expected, "an expected count")
    return _poisson_significance(observed, expected, 1.0)


def ratio_significances(observed: Sequence[float], expected: Sequence[float]) -> list[Significance]:
    """Label every unit's ratio (no pooled average: each ratio is judged against 1)."""
    same_length(observed, expected, "observed and expected counts")
    return [ratio_significance(o, e) for o, e in zip(observed, expected, strict=True)]


def derived_denominator(
    observed: float,
    rate: float | None,
    rate_type: RateType,
    multiplier: float,
    denominator: float | None = None,
) -> float | None:
    """The population a rate implies, ``m·O/rate``; None where it cannot be derived.

    A DSR is not events over a population, but ``m·O/DSR`` is the population that would
    give the same rate, which lets one Poisson funnel serve both kinds. With no events
    the rate says nothing about size: a DSR gets None, a crude rate uses the real
    ``denominator`` when one is given (so zero-event units still count in the average).
    """
    check_count(observed)
    check_positive(multiplier, "the multiplier")
    if rate_type == "crude" and observed == 0 and denominator is not None:
        check_positive(denominator, "a denominator")
        return float(denominator)
    if rate is None or (rate_type == "dsr" and observed == 0):
        return None
    if not _finite(rate, "a rate") >= 0:
        raise StatisticsError(f"a rate must be >= 0, got {rate!r}")
    if rate == 0:
        if observed > 0:
            raise StatisticsError(f"a rate of 0 cannot come from {observed!r} events")
        return None  # 0/0: no size information
    return multiplier * observed / rate


def rate_average(observed: Sequence[float], denominators: Sequence[float | None]) -> float:
    """The funnel's centre ``r̄ = ΣO/Σd`` in events per unit of denominator (not per m).

    Rows without a derived denominator are left out of both sums.
    """
    same_length(observed, denominators, "observed counts and denominators")
    pairs = [(o, d) for o, d in zip(observed, denominators, strict=True) if d is not None]
    total = math.fsum(d for _, d in pairs)
    if total <= 0:
        raise StatisticsError("no unit has a usable denominator, so there is no average rate")
    return math.fsum(o for o, _ in pairs) / total


def rate_significance(
    observed: float,
    derived_denominator: float | None,
    mean_rate: float,
    *,
    rate_type: RateType = "crude",
) -> Significance:
    """Label one unit's rate against ``mean_rate`` (events per unit of denominator,
    i.e. a rate per 100,000 divided by 100,000).

    A missing (or zero) denominator can show nothing, so it is "Not significant"; a DSR
    from fewer than 10 events is not applicable, whatever its interval says.
    """
    check_count(observed)
    if not _finite(mean_rate, "the benchmark rate") >= 0:
        raise StatisticsError(f"the benchmark rate must be >= 0, got {mean_rate!r}")
    if rate_type == "dsr" and observed < DSR_MIN_EVENTS:
        return _NOT_APPLICABLE
    if derived_denominator is None or derived_denominator <= 0:
        return "Not significant"
    return _poisson_significance(observed, derived_denominator, mean_rate)


def rate_significances(
    observed: Sequence[float],
    rates: Sequence[float | None],
    rate_type: RateType,
    multiplier: float,
    denominators: Sequence[float] | None = None,
) -> list[Significance]:
    """Label every unit against the weighted average rate of all of them."""
    derived = derived_denominators(observed, rates, rate_type, multiplier, denominators)
    mean_rate = rate_average(observed, derived)
    return [
        rate_significance(o, d, mean_rate, rate_type=rate_type)
        for o, d in zip(observed, derived, strict=True)
    ]


def derived_denominators(
    observed: Sequence[float],
    rates: Sequence[float | None],
    rate_type: RateType,
    multiplier: float,
    denominators: Sequence[float] | None,
) -> list[float | None]:
    """``derived_denominator`` for every unit (the real denominators are optional)."""
    same_length(observed, rates, "observed counts and rates")
    if denominators is not None:
        same_length(observed, denominators, "observed counts and denominators")
    return [
        derived_denominator(
            o, r, rate_type, multiplier, None if denominators is None else denominators[i]
        )
        for i, (o, r) in enumerate(zip(observed, rates, strict=True))
    ]
