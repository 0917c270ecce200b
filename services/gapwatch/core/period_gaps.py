"""One period's gap values, fast: the numbers the indicator endpoint would give, without
the confidence limits the SPC chart does not use.

A gap chart over 90 days x every ICB x every indicator needs thousands of period gaps,
and the full ``Report`` runs PHE's SII simulation (100,000 repetitions) for each. The
chart only plots point values, so this module computes exactly those: each group's
value by the same ``GroupStats`` as the report, the Q1 - Q5 (or D1 - D10) difference
and ratio, the SII as PHE's closed-form weighted least-squares slope (stats-methods
§7.4, the same fit ``core.stats.sii`` runs before simulating), and each ethnic group
against the reference group. ``tests/unit/core/test_period_gaps.py`` checks every value
against ``build_report`` on the same counts.

The counts needed are a small fixed set of fields (``GAP_FIELDS``): each indicator's
numerator and denominator measures by IMD decile (quintiles are pairs of deciles) and by
ethnic group. The alerter keeps only these per ICB and day.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from gapwatch.core.demographics import ETHNIC_GROUPS, UNKNOWN
from gapwatch.core.gap_series import GAP_MEASURES
from gapwatch.core.group_stats import PER, GroupStat, GroupStats, ReportOptions
from gapwatch.core.indicators import BREAKDOWNS, CATALOGUE, Indicator
from gapwatch.core.inequality import IMD_ENDS
from gapwatch.core.refdata import PopulationTable

__all__ = [
    "GAP_FIELDS",
    "SeriesId",
    "period_gaps",
    "series_ids",
    "sii_point",
]

_OPTIONS: Final = ReportOptions(levels=(0.95,))


def _gap_fields() -> tuple[str, ...]:
    measures = sorted(
        {m for ind in CATALOGUE.values() for m in (ind.numerator, ind.denominator) if m}
    )
    return tuple(
        f"{m}|{by}|{g}"
        for m in measures
        for by in ("imd_decile", "ethnic_group")
        for g in BREAKDOWNS[by]
    )


GAP_FIELDS: Final[tuple[str, ...]] = _gap_fields()
"""Every count field a gap series reads, in a fixed order (vectors are laid out so)."""


@dataclass(frozen=True, slots=True, order=True)
class SeriesId:
    """One charted gap series of an area: indicator x breakdown x measure."""

    indicator: str
    breakdown: str
    measure: str
    """"difference", "ratio" or "sii"; for ethnic groups "<measure>:<group>" (that group
    against the reference group)."""

    @property
    def base_measure(self) -> str:
        return self.measure.partition(":")[0]

    @property
    def group(self) -> str | None:
        return self.measure.partition(":")[2] or None


def series_ids(
    indicators: Iterable[str], breakdowns: Iterable[str], reference_group: str
) -> list[SeriesId]:
    """Every gap series for these indicators and breakdowns (those the indicator offers)."""
    out: list[SeriesId] = []
    wanted = tuple(breakdowns)
    for ind_id in indicators:
        indicator = CATALOGUE[ind_id]
        for by in wanted:
            if by not in GAP_MEASURES or by not in indicator.breakdowns:
                continue
            for measure in GAP_MEASURES[by]:
                if by == "ethnic_group":
                    out.extend(
                        SeriesId(ind_id, by, f"{measure}:{g}")
                        for g in ETHNIC_GROUPS
                        if g not in (reference_group, UNKNOWN)
                    )
                else:
                    out.append(SeriesId(ind_id, by, measure))
    return out


def period_gaps(
    indicator: Indicator,
    by: str,
    counts: Mapping[str, int],
    population: PopulationTable,
    icbs: Sequence[str],
    years: float,
    reference_group: str,
    min_events: int = 0,
) -> dict[str, float | None]:
    """Measure id (as in ``SeriesId.measure``) -> this period's gap, None where the
    report would have none. ``years`` is the period's length in years.

    ``min_events``: a gap whose compared groups (both ends; every quantile for the SII;
    the group and the reference) have fewer numerator events than this is None too. A
    day of 2 or 3 events is mostly Poisson noise and skewed: charted, it fires "Above
    UCL" far more often than the rules' false-alarm rate (docs/alerts.md)."""
    stat = GroupStats(indicator, counts, population, icbs, years, _OPTIONS)
    if by in IMD_ENDS:
        most, least = IMD_ENDS[by]
        groups = [stat(by, g) for g in BREAKDOWNS[by] if g != UNKNOWN]
        named = {g.group: g for g in groups}
        a, b = named[most], named[least]
        if min(a.numerator, b.numerator) < min_events:
            return {"difference": None, "ratio": None, "sii": None}
        sparse = min(g.numerator for g in groups) < min_events
        return {
            "difference": _difference(a.estimate.value, b.estimate.value),
            "ratio": _ratio(a.estimate.value, b.estimate.value),
            "sii": None if sparse else _sii(indicator, groups, years),
        }
    if by == "ethnic_group":
        ref = stat(by, reference_group)
        out: dict[str, float | None] = {}
        for g in ETHNIC_GROUPS:
            if g in (reference_group, UNKNOWN):
                continue
            group = stat(by, g)
            enough = min(group.numerator, ref.numerator) >= min_events
            value, reference = group.estimate.value, ref.estimate.value
            out[f"difference:{g}"] = _difference(value, reference) if enough else None
            out[f"ratio:{g}"] = _ratio(value, reference) if enough else None
        return out
    return {}


def _difference(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def _ratio(a: float | None, b: float | None) -> float | None:
    """As ``stats.gaps.ratio``: missing unless b > 0 and a >= 0."""
    if a is None or b is None or b <= 0 or a < 0:
        return None
    return a / b


def _sii(indicator: Indicator, groups: Sequence[GroupStat], years: float) -> float | None:
    """The report's SII point value (``core.inequality._sii``), which is None when a
    group has no value or denominator, or (as ``sii_from_counts`` refuses it) a count of
    0 or a proportion of 1."""
    weights, values = [], []
    for g in groups:
        if g.estimate.value is None or not g.denominator:
            return None
        if g.numerator <= 0:
            return None
        if indicator.kind == "proportion":
            if g.numerator >= g.denominator:
                return None
            values.append(g.numerator / g.denominator)
        else:
            # Per person, as the report simulates it; scaled to per year below.
            values.append(g.numerator * PER / g.denominator)
        weights.append(g.denominator)
    slope = sii_point(weights, values)
    return slope / years if indicator.kind == "rate" else slope


def sii_point(populations: Sequence[float], values: Sequence[float]) -> float:
    """PHE's SII point estimate: the slope of the population-weighted least-squares line
    through each quantile's value at the midpoint of its cumulative population share
    (rank 0 = most deprived; stats-methods §7.3-7.4)."""
    total = sum(populations)
    shares = [p / total for p in populations]
    ranks, cumulative = [], 0.0
    for a in shares:
        ranks.append(cumulative + a / 2)
        cumulative += a
    s_a = sum(shares)
    s_ab = sum(a * b for a, b in zip(shares, ranks, strict=True))
    s_abb = sum(a * b * b for a, b in zip(shares, ranks, strict=True))
    s_ay = sum(a * y for a, y in zip(shares, values, strict=True))
    s_aby = sum(a * b * y for a, b, y in zip(shares, ranks, values, strict=True))
    return (s_a * s_aby - s_ab * s_ay) / (s_a * s_abb - s_ab * s_ab)
