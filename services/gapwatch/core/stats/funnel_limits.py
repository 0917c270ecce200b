"""Funnel plots, part 2: the control-limit tables a chart draws (stats-methods §8).

PHEindicatormethods 2.1.0 ``calculate_funnel_limits`` and ``calculate_funnel_points``:
the 2 and 3 sigma limits of proportion (Wilson) and ratio and rate (Poisson) funnels,
and where each unit sits on a rate funnel. Tables are 100 points along the x-axis,
spaced geometrically between rounded axis ends, and Poisson limits come from the
package's bisection, both copied as the package does them so the tables match its own.

Kept apart from ``funnel`` (significance against a benchmark), whose averages, derived
denominators, Wilson bound and checks these tables reuse; only charts need them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal

from scipy.special import gammainc, gammaincc

from gapwatch.core.errors import StatisticsError
from gapwatch.core.stats.funnel import (
    DSR_MIN_EVENTS,
    RateType,
    Side,
    check_count,
    check_positive,
    derived_denominators,
    proportion_average,
    proportion_funnel_bound,
    rate_average,
    same_length,
)

__all__ = [
    "AXIS_POINTS",
    "FunnelPoint",
    "ProportionFunnelRow",
    "RateFunnelRow",
    "RatioFunnelRow",
    "RatioType",
    "funnel_points",
    "poisson_funnel_expected",
    "proportion_funnel_limits",
    "rate_funnel_limits",
    "ratio_funnel_limits",
]

RatioType = Literal["count", "isr"]

AXIS_POINTS: Final = 100
"""Points per limit table: enough for a smooth curve, as the package plots."""

_BISECTION_STOP: Final = 1e-7
"""The package stops bisecting once the step is this small; copying it (rather than
solving exactly) is what reproduces its limits to ~1e-9 instead of ~1e-7."""


# --- the x-axis -----------------------------------------------------------------------


def _digits(whole: int) -> int:
    return len(str(abs(whole)))


def _axis_min(low: float, high: float) -> float:
    """Start at 0 for a wide range, else just below the smallest unit, rounded down to
    its leading digit (0.95 × 2345 = 2227.75 → 2000)."""
    if high > 2 * low:
        return 0.0
    scale = 10.0 ** (_digits(math.floor(0.95 * low)) - 1)
    return math.floor(0.95 * low / scale) * scale


def _axis_max(high: float) -> float:
    """End just above the largest unit, rounded up to two leading digits
    (1.05 × 104000 = 109200 → 110000)."""
    scale = 10.0 ** (_digits(math.ceil(1.05 * high)) - 2)
    return math.ceil(1.05 * high / scale) * scale


def _axis_points(start: float, end: float, offset: int) -> list[int]:
    """100 whole x values from ``start`` towards ``end``, geometrically spaced so the
    steep small-size end of the funnel gets as many points as the flat end.

    Each point spreads the remaining ratio over the remaining points (``101 − j +
    offset`` of them), rounded half-to-even and always at least one above the last.
    """
    points = [max(1, round(start))]
    for j in range(2, AXIS_POINTS + 1):
        previous = points[-1]
        step = (end / previous) ** (1 / (AXIS_POINTS + 1 - j + offset)) * previous
        points.append(max(round(step), previous + 1))
    return points


# --- Poisson funnel -------------------------------------------------------------------


def _tail_probability(events: int, expected: float, side: Side) -> float:
    """P(K ≥ O) for the low side, P(K ≤ O) for the high side, with K ~ Poisson(λ)."""
    if side == "low":
        return 1.0 if events == 0 else float(gammainc(events, expected))
    return float(gammaincc(events + 1, expected))


def poisson_funnel_expected(events: int, tail: float, side: Side) -> float:
    """The expected count λ at which ``events`` sits exactly on the ``tail`` boundary.

    "low": P(K ≥ O | λ) = tail (the smallest λ that could plausibly give O);
    "high": P(K ≤ O | λ) = tail. Solved as the package does, by bisection on
    ``v ∈ (0, 1)`` with ``λ = (1 + O)·v/(1 − v)``, halving the step from 0.5 until it
    is at most 1e-7. The result is within 6e-8 of the root in v (about 1e-6 relative in
    λ, except for tiny λ), and matches the package's own limits to the digits stored.
    """
    if events < 0:
        raise StatisticsError(f"events must be >= 0, got {events!r}")
    if not 0 < tail < 1:
        raise StatisticsError(f"a tail probability must be in (0, 1), got {tail!r}")
    v = step = 0.5
    while step > _BISECTION_STOP:
        step /= 2
        p = _tail_probability(events, (1 + events) * v / (1 - v), side)
        too_big = p > tail if side == "low" else p < tail
        v = v - step if too_big else v + step
    return (1 + events) * v / (1 - v)


# --- limit tables ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProportionFunnelRow:
    """Funnel limits at one population; limits and baseline are times the multiplier."""

    population: int
    lower_2s_limit: float
    upper_2s_limit: float
    lower_3s_limit: float
    upper_3s_limit: float
    baseline: float
    statistic: str
    method: str


@dataclass(frozen=True, slots=True)
class RatioFunnelRow:
    """Funnel limits at ``observed_events``: each ``*_exp_events`` is the expected count
    λ on the boundary, and each limit is ``O/λ`` as ``ratio_type`` presents it."""

    observed_events: int
    lower_2s_exp_events: float
    lower_2s_limit: float
    upper_2s_exp_events: float
    upper_2s_limit: float
    lower_3s_exp_events: float
    lower_3s_limit: float
    upper_3s_exp_events: float
    upper_3s_limit: float
    baseline: float
    statistic: str
    method: str


@dataclass(frozen=True, slots=True)
class RateFunnelRow:
    """Funnel limits at ``events``: each limit (per multiplier) with the one-year
    population at which a unit with those events sits on it."""

    events: int
    lower_2s_population_1_year: float
    lower_2s_limit: float
    upper_2s_population_1_year: float
    upper_2s_limit: float
    lower_3s_population_1_year: float
    lower_3s_limit: float
    upper_3s_population_1_year: float
    upper_3s_limit: float
    baseline: float
    statistic: str
    method: str


@dataclass(frozen=True, slots=True)
class FunnelPoint:
    """Where one unit is drawn on a rate funnel: its rate and per-year denominator
    (both None for a DSR from fewer than 10 events, which is not published)."""

    rate_chart: float | None
    denominator_derived: float | None


def proportion_funnel_limits(
    numerators: Sequence[float], denominators: Sequence[float], multiplier: float = 100
) -> list[ProportionFunnelRow]:
    """The proportion funnel over the units' range of denominators.

    Limits are clamped to [0, 100]: the package hard-codes 100 as the top whatever the
    multiplier, and we keep that for parity.
    """
    check_positive(multiplier, "the multiplier")
    mean_p = proportion_average(numerators, denominators)
    start = _axis_min(min(denominators), max(denominators))
    end = _axis_max(max(denominators))

    def limit(n: int, tail: float, side: Side) -> float:
        value = proportion_funnel_bound(mean_p, n, tail, side) * multiplier
        return max(value, 0.0) if side == "low" else min(value, 100.0)

    return [
        ProportionFunnelRow(
            population=n,
            lower_2s_limit=limit(n, 0.025, "low"),
            upper_2s_limit=limit(n, 0.025, "high"),
            lower_3s_limit=limit(n, 0.001, "low"),
            upper_3s_limit=limit(n, 0.001, "high"),
            baseline=mean_p * multiplier,
            statistic="proportion",
            method="Wilson",
        )
        for n in _axis_points(start, end, offset=0)
    ]


def ratio_funnel_limits(
    observed: Sequence[float], expected: Sequence[float], ratio_type: RatioType = "isr"
) -> list[RatioFunnelRow]:
    """The ratio funnel over the units' range of expected counts.

    The x values are used as observed event counts (the package's ``Observed_events``).
    ``ratio_type`` "count" shows ``O/λ − 1`` (excess over expected) and "isr" shows
    ``100·O/λ`` (the usual standardised ratio × 100).
    """
    same_length(observed, expected, "observed and expected counts")
    for o, e in zip(observed, expected, strict=True):
        check_count(o)
        check_positive(e, "an expected count")
    scale, shift = (1.0, -1.0) if ratio_type == "count" else (100.0, 0.0)
    start = _axis_min(min(expected), max(expected))
    rows = []
    for events in _axis_points(start, _axis_max(max(expected)), offset=1):
        lam = _boundary_expected(events)
        limit = [events / x * scale + shift for x in lam]
        rows.append(
            RatioFunnelRow(
                observed_events=events,
                lower_2s_exp_events=lam[0],
                lower_2s_limit=limit[0],
                upper_2s_exp_events=lam[1],
                upper_2s_limit=limit[1],
                lower_3s_exp_events=lam[2],
                lower_3s_limit=limit[2],
                upper_3s_exp_events=lam[3],
                upper_3s_limit=limit[3],
                baseline=scale + shift,
                statistic=f"ratio ({ratio_type})",
                method="Poisson",
            )
        )
    return rows


def _boundary_expected(events: int) -> tuple[float, float, float, float]:
    """λ on the lower 2 sigma, upper 2 sigma, lower 3 sigma and upper 3 sigma limits.

    A lower limit on ``O/λ`` needs the largest plausible λ (the "high" side) and an upper
    limit the smallest (the "low" side).
    """
    return (
        poisson_funnel_expected(events, 0.025, "high"),
        poisson_funnel_expected(events, 0.025, "low"),
        poisson_funnel_expected(events, 0.001, "high"),
        poisson_funnel_expected(events, 0.001, "low"),
    )


def _multiplier_text(multiplier: float) -> str:
    """100000 -> "100,000", the package's wording in the rate statistic."""
    return f"{int(multiplier):,}" if float(multiplier).is_integer() else f"{multiplier:,}"


def rate_funnel_limits(
    numerators: Sequence[float],
    rates: Sequence[float | None],
    rate_type: RateType,
    multiplier: float,
    years_of_data: float,
    denominators: Sequence[float] | None = None,
) -> list[RateFunnelRow]:
    """The rate funnel over the units' range of derived denominators.

    The axis is rounded on per-year denominators (what a reader compares), then turned
    into whole events at the average rate. At each event count the boundary λ gives the
    population ``λ/r̄`` and the limit ``O/population · m``.
    """
    check_positive(years_of_data, "years_of_data")
    derived = derived_denominators(numerators, rates, rate_type, multiplier, denominators)
    mean_rate = rate_average(numerators, derived)
    yearly = [d / years_of_data for d in derived if d is not None]
    first = math.floor(_axis_min(min(yearly), max(yearly)) * years_of_data * mean_rate)
    last = math.ceil(_axis_max(max(yearly)) * years_of_data * mean_rate)

    statistic = f"rate ({rate_type} per {_multiplier_text(multiplier)})"
    rows = []
    for events in _axis_points(first, last, offset=0):
        population = [lam / mean_rate for lam in _boundary_expected(events)]
        per_year = [p / years_of_data for p in population]
        limit = [events / p * multiplier for p in population]
        rows.append(
            RateFunnelRow(
                events=events,
                lower_2s_population_1_year=per_year[0],
                lower_2s_limit=limit[0],
                upper_2s_population_1_year=per_year[1],
                upper_2s_limit=limit[1],
                lower_3s_population_1_year=per_year[2],
                lower_3s_limit=limit[2],
                upper_3s_population_1_year=per_year[3],
                upper_3s_limit=limit[3],
                baseline=mean_rate * multiplier,
                statistic=statistic,
                method="Poisson",
            )
        )
    return rows


def funnel_points(
    numerators: Sequence[float],
    rates: Sequence[float | None],
    rate_type: RateType,
    multiplier: float,
    years_of_data: float,
    denominators: Sequence[float] | None = None,
) -> list[FunnelPoint]:
    """Each unit's position on a rate funnel: (rate, derived denominator per year)."""
    check_positive(years_of_data, "years_of_data")
    derived = derived_denominators(numerators, rates, rate_type, multiplier, denominators)
    points = []
    for o, rate, d in zip(numerators, rates, derived, strict=True):
        if rate_type == "dsr" and o < DSR_MIN_EVENTS:
            points.append(FunnelPoint(None, None))
        else:
            points.append(FunnelPoint(rate, None if d is None else d / years_of_data))
    return points
