"""Indicator values from summed counts: crude rates and proportions per group.

Rates are per 100,000 resident population per year of window:
``value = numerator / (population * window_days / 365.25) * 100000``.
Proportions are ``numerator / denominator`` in 0-1. A group with no denominator gets
``value = None`` (never a made-up zero).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from gapwatch.core.counting import read_count
from gapwatch.core.indicators import BREAKDOWNS, Indicator
from gapwatch.core.refdata import PopulationTable
from gapwatch.core.windows import DAY_MS

__all__ = ["GroupValue", "IndicatorValues", "compute"]

DAYS_PER_YEAR = 365.25
PER = 100_000


@dataclass(frozen=True, slots=True)
class GroupValue:
    group: str
    numerator: int
    denominator: float | None
    value: float | None


@dataclass(frozen=True, slots=True)
class IndicatorValues:
    groups: tuple[GroupValue, ...]
    total: GroupValue


def compute(
    indicator: Indicator,
    by: str,
    counts: Mapping[str, int],
    population: PopulationTable,
    icbs: Iterable[str],
    window_ms: int,
) -> IndicatorValues:
    """Values for each group of breakdown ``by`` from ``counts`` (store field -> count)."""
    icb_list = list(icbs)
    groups = tuple(
        _value(indicator, by, g, counts, population, icb_list, window_ms) for g in BREAKDOWNS[by]
    )
    total = _value(indicator, "total", "all", counts, population, icb_list, window_ms)
    return IndicatorValues(groups, total)


def _value(
    indicator: Indicator,
    by: str,
    group: str,
    counts: Mapping[str, int],
    population: PopulationTable,
    icbs: list[str],
    window_ms: int,
) -> GroupValue:
    def count(measure: str) -> int:
        return read_count(counts, measure, by, group)

    numerator = count(indicator.numerator)
    if indicator.denominator is not None:
        denominator = count(indicator.denominator)
        value = numerator / denominator if denominator else None
        return GroupValue(group, numerator, float(denominator), value)
    people = population.people(icbs, by, group, indicator.population_ages)
    if not people:
        return GroupValue(group, numerator, None, None)
    years = window_ms / DAY_MS / DAYS_PER_YEAR
    return GroupValue(group, numerator, people, numerator / (people * years) * PER)
