"""An indicator's full statistical answer for one area and breakdown.

From summed counts and resident populations this builds what the API serves: each
group's value with confidence limits by PHE's methods (Wilson for proportions; exact
below 10 events and Byar from 10 for crude rates; Dobson DSRs on ESP2013 when
standardised), the gap between groups (difference and ratio with MOVER limits; SII and
RII by PHE's simulation across IMD quintiles or deciles), and the area against a
benchmark (England) by PHE's funnel significance (``core.benchmark``).

Pure: counts and populations come in, numbers go out. One group's statistic is
``core.group_stats``; the gaps are ``core.inequality``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from gapwatch.core.errors import StatisticsError
from gapwatch.core.group_stats import GroupStat, GroupStats, ReportOptions, statistic_method
from gapwatch.core.indicators import BREAKDOWNS, Indicator
from gapwatch.core.inequality import IMD_ENDS, EthnicGap, ImdGap, ethnic_gap, imd_gap
from gapwatch.core.refdata import PopulationTable
from gapwatch.core.stats.gaps import DIFFERENCE_METHOD, RATIO_METHOD

__all__ = ["Report", "area_total", "build_report"]


@dataclass(frozen=True, slots=True)
class Report:
    groups: tuple[GroupStat, ...]
    total: GroupStat
    gap: ImdGap | EthnicGap | None
    gap_methods: tuple[str, ...]
    statistic_method: str


def build_report(
    indicator: Indicator,
    by: str,
    counts: Mapping[str, int],
    population: PopulationTable,
    icbs: Sequence[str],
    years: float,
    options: ReportOptions,
) -> Report:
    """Values, limits and gaps for ``indicator`` by ``by`` over ``icbs``; ``years`` is the
    elapsed window in years (rates are per 100,000 per year)."""
    if options.standardised and indicator.kind != "rate":
        raise StatisticsError("only rates can be age-standardised")
    stat = GroupStats(indicator, counts, population, icbs, years, options)
    groups = tuple(stat(by, g) for g in BREAKDOWNS[by])
    total = stat("total", "all")
    gap: ImdGap | EthnicGap | None = None
    methods: tuple[str, ...] = ()
    if by in IMD_ENDS:
        gap = imd_gap(indicator, by, groups, years, options)
        methods = (DIFFERENCE_METHOD, RATIO_METHOD, gap.sii_method)
    elif by == "ethnic_group" and options.reference_ethnic_group in BREAKDOWNS[by]:
        gap = ethnic_gap(groups, options)
        methods = (DIFFERENCE_METHOD, RATIO_METHOD)
    return Report(groups, total, gap, methods, statistic_method(indicator, options))


def area_total(
    indicator: Indicator,
    counts: Mapping[str, int],
    population: PopulationTable,
    icbs: Sequence[str],
    years: float,
    options: ReportOptions,
) -> GroupStat:
    """The whole area's value with limits (e.g. England's, as a benchmark)."""
    return GroupStats(indicator, counts, population, icbs, years, options)("total", "all")
