"""Inequality between groups: most vs least deprived, SII/RII, each ethnic group vs a
reference group.

Differences and ratios use MOVER limits built from each group's own limits
(``stats.gaps``); the SII and RII use PHE's regression and simulation (``stats.sii``),
memoised on their exact inputs so an unchanged window never re-runs the simulation.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Final, Literal

from gapwatch.core.demographics import UNKNOWN
from gapwatch.core.errors import StatisticsError
from gapwatch.core.group_stats import PER, GroupStat, ReportOptions
from gapwatch.core.indicators import BREAKDOWNS, Indicator
from gapwatch.core.stats.confidence import Interval
from gapwatch.core.stats.gaps import GroupEstimate, Limits, difference, ratio
from gapwatch.core.stats.sii import SiiInput, SiiResult, sii
from gapwatch.core.stats.sii_counts import sii_from_counts

__all__ = ["IMD_ENDS", "EthnicGap", "GroupComparison", "ImdGap", "ethnic_gap", "imd_gap"]

IMD_ENDS: Final = {"imd_quintile": ("1", "5"), "imd_decile": ("1", "10")}


@dataclass(frozen=True, slots=True)
class ImdGap:
    """Most vs least deprived (Q1 - Q5 or D1 - D10) and the SII/RII across all."""

    most: str
    least: str
    level: float
    absolute: Limits
    ratio: Limits
    sii: Limits
    rii: Limits
    sii_method: str
    note: str | None


@dataclass(frozen=True, slots=True)
class GroupComparison:
    group: str
    difference: Limits
    ratio: Limits


@dataclass(frozen=True, slots=True)
class EthnicGap:
    reference: str
    level: float
    comparisons: tuple[GroupComparison, ...]


def _limits_at(stat: GroupStat, level: float) -> GroupEstimate:
    interval: Interval = stat.estimate.at(level)
    return GroupEstimate(stat.estimate.value, interval.lower, interval.upper)


def imd_gap(
    indicator: Indicator,
    by: str,
    groups: tuple[GroupStat, ...],
    years: float,
    options: ReportOptions,
) -> ImdGap:
    level = options.levels[0]
    most, least = IMD_ENDS[by]
    named = {g.group: g for g in groups}
    a, b = _limits_at(named[most], level), _limits_at(named[least], level)
    ordered = [named[q] for q in BREAKDOWNS[by] if q != UNKNOWN]
    sii_limits, rii_limits, method, note = _sii(indicator, ordered, years, options)
    return ImdGap(
        most, least, level, difference(a, b), ratio(a, b), sii_limits, rii_limits, method, note
    )


_NO_LIMITS: Final = Limits(None, None, None)


def _sii(
    indicator: Indicator,
    ordered: list[GroupStat],
    years: float,
    options: ReportOptions,
) -> tuple[Limits, Limits, str, str | None]:
    """SII and RII across the IMD groups in order (1 = most deprived, at rank 0)."""
    reps, seed = options.sii_repetitions, options.sii_seed
    method = (
        f"PHE phe_sii: weighted regression on cumulative population rank midpoints "
        f"(group 1 = most deprived at rank 0, so a negative SII means higher values in "
        f"more deprived areas); limits by simulation, {reps} repetitions, seed {seed}, "
        f"values simulated on the {'logit' if indicator.kind == 'proportion' else 'log'} "
        f"scale from each group's 95% limits."
    )
    missing = [g.group for g in ordered if g.estimate.value is None or not g.denominator]
    if missing:
        return _NO_LIMITS, _NO_LIMITS, method, f"no value for group(s) {', '.join(missing)}"
    level = options.levels[0]
    # Rates are simulated per person (not per person-year) and scaled by 1 / years after:
    # the SII and its simulated limits scale exactly with the values, and the memoised
    # simulation then stays valid as the window's elapsed time grows minute by minute.
    scale = years if indicator.kind == "rate" else 1.0
    try:
        if options.standardised:
            result = _cached_sii_from_limits(
                tuple(_dsr_row(g, scale) for g in ordered), (level,), reps, seed
            )
        else:
            result = _cached_sii_from_counts(
                tuple(float(g.numerator) for g in ordered),
                tuple(float(g.denominator or 0.0) for g in ordered),
                indicator.kind,
                (level,),
                reps,
                seed,
            )
    except StatisticsError as exc:
        return _NO_LIMITS, _NO_LIMITS, method, f"SII not computed: {exc}"
    limits = result.limits[0]
    sii_limits = Limits(
        result.sii / scale, _scaled(limits.sii.lower, scale), _scaled(limits.sii.upper, scale)
    )
    rii = limits.rii
    rii_limits = Limits(result.rii, rii.lower if rii else None, rii.upper if rii else None)
    return sii_limits, rii_limits, method, None


def _scaled(value: float | None, scale: float) -> float | None:
    return None if value is None else value / scale


def _dsr_row(g: GroupStat, scale: float) -> tuple[float, float, float | None, float | None]:
    """(population, DSR, 95% limits) per person rather than per person-year."""
    at95 = g.estimate.find(0.95) or Interval(0.95, None, None)
    return (
        float(g.denominator or 0.0),
        float(g.estimate.value or 0.0) * scale,
        None if at95.lower is None else at95.lower * scale,
        None if at95.upper is None else at95.upper * scale,
    )


@lru_cache(maxsize=4096)
def _cached_sii_from_counts(
    counts: tuple[float, ...],
    populations: tuple[float, ...],
    kind: Literal["rate", "proportion"],
    levels: tuple[float, ...],
    repetitions: int,
    seed: int,
) -> SiiResult:
    # For proportions the "population" is the denominator events (value = x / n).
    return sii_from_counts(
        counts,
        populations,
        kind=kind,
        multiplier=PER if kind == "rate" else 1.0,
        levels=levels,
        repetitions=repetitions,
        seed=seed,
    )


@lru_cache(maxsize=4096)
def _cached_sii_from_limits(
    rows: tuple[tuple[float, float, float | None, float | None], ...],
    levels: tuple[float, ...],
    repetitions: int,
    seed: int,
) -> SiiResult:
    inputs = [
        SiiInput(quantile=i + 1, population=pop, value=value, lower=lower, upper=upper)
        for i, (pop, value, lower, upper) in enumerate(rows)
    ]
    return sii(
        inputs,
        value_type="rate",
        multiplier=1.0,
        levels=levels,
        repetitions=repetitions,
        seed=seed,
        rii=True,
    )


def ethnic_gap(groups: tuple[GroupStat, ...], options: ReportOptions) -> EthnicGap:
    level = options.levels[0]
    reference = next(g for g in groups if g.group == options.reference_ethnic_group)
    b = _limits_at(reference, level)
    comparisons = tuple(
        GroupComparison(
            g.group, difference(_limits_at(g, level), b), ratio(_limits_at(g, level), b)
        )
        for g in groups
        if g.group not in (reference.group, UNKNOWN)
    )
    return EthnicGap(reference.group, level, comparisons)
