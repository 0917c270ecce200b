"""What may be published of an indicator for one area: ``core.report`` under disclosure
control (docs/nhs-inequalities.md §5).

Same inputs as ``report.build_report``. The indicator's numerator, and for a proportion
its denominator, is controlled over *every* breakdown the indicator has at once
(``disclosure.control_tables``, with the identities between IMD quintiles and deciles),
not only the one asked for: a reader can ask for all of them and combine what they
show, so each request must publish its part of one consistent, audited whole. The
denominator is controlled on its own (so a measure shared by two indicators is
published the same in both) and the numerator within it (a numerator is never above its
denominator, and a reader knows it).

Every value and limit is then computed from the *published* counts: a crude rate from
the rounded numerator over the resident population, a proportion from the rounded
numerator over the rounded denominator; nothing is computed where a count it needs is
suppressed. The gap (IMD: absolute, ratio, SII, RII; ethnic group: difference and ratio
against the reference group) is computed from the same published figures, so it is
missing when a group it needs is suppressed. Age-standardised rates are not offered:
a DSR needs counts by age band within each group, and controlling those would suppress
almost all of them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Final

from gapwatch.core.counting import read_count
from gapwatch.core.demographics import UNKNOWN
from gapwatch.core.disclosure import (
    ControlledCount,
    ControlledTables,
    Link,
    control_tables,
)
from gapwatch.core.errors import StatisticsError
from gapwatch.core.group_stats import PER, GroupStat, ReportOptions, statistic_method
from gapwatch.core.indicators import BREAKDOWNS, Indicator
from gapwatch.core.inequality import IMD_ENDS, EthnicGap, ImdGap, ethnic_gap, imd_gap
from gapwatch.core.refdata import PopulationTable
from gapwatch.core.stats.gaps import DIFFERENCE_METHOD, RATIO_METHOD, Limits
from gapwatch.core.stats.proportion import proportion
from gapwatch.core.stats.rate import crude_rate

__all__ = [
    "CONTROL_NOTE",
    "PublicGroup",
    "PublicReport",
    "build_public_report",
    "control_measure",
    "links_between",
]

TOTAL_GROUP: Final = "all"
CONTROL_NOTE: Final = (
    "Counts are disclosure-controlled (1 to 7 suppressed, others rounded to the nearest "
    "5, totals too); values and limits are computed from the published counts."
)
_NO_LIMITS: Final = Limits(None, None, None)
_IMD_LINKS: Final[tuple[Link, ...]] = (
    *(
        (("imd_quintile", str(q)), (("imd_decile", str(2 * q - 1)), ("imd_decile", str(2 * q))))
        for q in range(1, 6)
    ),
    (("imd_quintile", UNKNOWN), (("imd_decile", UNKNOWN),)),
)
"""Quintile q is deciles 2q-1 and 2q; an unknown IMD is unknown in both."""


@dataclass(frozen=True, slots=True)
class PublicGroup:
    group: str
    numerator: ControlledCount
    denominator: ControlledCount | None
    """Proportions: the published denominator count; None for rates."""
    population: float | None
    """Rates: the resident population (people, not events: published as it is)."""
    stat: GroupStat
    """The statistic from the published counts; its numerator is the published count (0
    when suppressed, and then the value and limits are missing)."""

    @property
    def suppressed(self) -> bool:
        """The numerator or the denominator count is suppressed."""
        den = self.denominator
        return self.numerator.suppressed or (den is not None and den.suppressed)


@dataclass(frozen=True, slots=True)
class PublicReport:
    by: str
    groups: tuple[PublicGroup, ...]
    total: PublicGroup
    gap: ImdGap | EthnicGap | None
    gap_methods: tuple[str, ...]
    statistic_method: str

    @property
    def suppressed(self) -> tuple[str, ...]:
        """Groups with a suppressed count, then ``"all"`` if the total's is."""
        rows = (*self.groups, self.total)
        return tuple(g.group for g in rows if g.suppressed)


def links_between(breakdowns: Sequence[str]) -> tuple[Link, ...]:
    """The identities a reader knows between cells of ``breakdowns``."""
    if "imd_quintile" in breakdowns and "imd_decile" in breakdowns:
        return _IMD_LINKS
    return ()


def control_measure(
    counts: Mapping[str, int],
    measure: str,
    breakdowns: Sequence[str],
    within: ControlledTables | None = None,
) -> ControlledTables:
    """One measure's counts in every group of ``breakdowns``, controlled together."""
    tables = {
        by: {g: read_count(counts, measure, by, g) for g in BREAKDOWNS[by]} for by in breakdowns
    }
    total = read_count(counts, measure, "total", TOTAL_GROUP)
    return control_tables(tables, total, links_between(breakdowns), within)


def build_public_report(
    indicator: Indicator,
    by: str,
    counts: Mapping[str, int],
    population: PopulationTable,
    icbs: Sequence[str],
    years: float,
    options: ReportOptions,
) -> PublicReport:
    """The publishable report of ``indicator`` by ``by`` over ``icbs``; ``years`` is the
    window in years (rates are per 100,000 per year). Raises ``StatisticsError`` for an
    age-standardised request or a breakdown the indicator does not have."""
    if options.standardised:
        raise StatisticsError(
            "age-standardised rates are not published under disclosure control (their "
            "age-band counts would almost all be suppressed); use the crude rate"
        )
    if by not in indicator.breakdowns:
        raise StatisticsError(
            f"{indicator.id} has no {by!r} breakdown: use one of {', '.join(indicator.breakdowns)}"
        )
    den = None
    if indicator.denominator is not None:
        den = control_measure(counts, indicator.denominator, indicator.breakdowns)
    num = control_measure(counts, indicator.numerator, indicator.breakdowns, within=den)

    def row(
        breakdown: str, group: str, n: ControlledCount, d: ControlledCount | None
    ) -> PublicGroup:
        return _group(indicator, breakdown, group, n, d, population, icbs, years, options)

    groups = tuple(
        row(by, g, c, None if den is None else den.tables[by].cells[g])
        for g, c in num.tables[by].cells.items()
    )
    total = row("total", TOTAL_GROUP, num.total, None if den is None else den.total)
    gap, methods = _gap(indicator, by, groups, years, options)
    method = f"{statistic_method(indicator, options)} {CONTROL_NOTE}"
    return PublicReport(by, groups, total, gap, methods, method)


def _group(
    indicator: Indicator,
    by: str,
    group: str,
    numerator: ControlledCount,
    denominator: ControlledCount | None,
    population: PopulationTable,
    icbs: Sequence[str],
    years: float,
    options: ReportOptions,
) -> PublicGroup:
    levels = options.levels
    x = numerator.value
    note = None if x is not None else "count suppressed by disclosure control"
    if denominator is not None:
        n = denominator.value
        if n is None:
            note = "denominator suppressed by disclosure control"
        usable = x is not None and bool(n)
        estimate = proportion(x if usable else None, n if usable else None, levels)
        stat = GroupStat(group, x or 0, float(n) if n else None, estimate, note)
        return PublicGroup(group, numerator, denominator, None, stat)
    people = population.people(icbs, by, group, indicator.population_ages)
    estimate = crude_rate(x, people * years if people else None, levels, PER)
    stat = GroupStat(group, x or 0, people, estimate, note)
    return PublicGroup(group, numerator, None, people, stat)


def _gap(
    indicator: Indicator,
    by: str,
    groups: tuple[PublicGroup, ...],
    years: float,
    options: ReportOptions,
) -> tuple[ImdGap | EthnicGap | None, tuple[str, ...]]:
    stats = tuple(g.stat for g in groups)
    if by in IMD_ENDS:
        gap = imd_gap(indicator, by, stats, years, options)
        hidden = [g.group for g in groups if g.group != UNKNOWN and g.suppressed]
        if hidden:
            gap = replace(
                gap,
                sii=_NO_LIMITS,
                rii=_NO_LIMITS,
                note=f"not published: group(s) {', '.join(hidden)} suppressed by "
                "disclosure control",
            )
        return gap, (DIFFERENCE_METHOD, RATIO_METHOD, gap.sii_method)
    if by == "ethnic_group" and options.reference_ethnic_group in BREAKDOWNS[by]:
        return ethnic_gap(stats, options), (DIFFERENCE_METHOD, RATIO_METHOD)
    return None, ()
