"""One group's statistic: a proportion, a crude rate or an age-standardised rate.

Counts and resident populations in, a PHE estimate with limits out: Wilson for
proportions, exact (< 10 events) or Byar for crude rates, Dobson DSRs on ESP2013.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from gapwatch.core.counting import esp_counts, read_count
from gapwatch.core.demographics import ESP_BANDS, UNKNOWN
from gapwatch.core.indicators import Indicator
from gapwatch.core.refdata import PopulationTable
from gapwatch.core.stats.confidence import Estimate
from gapwatch.core.stats.dsr import ESP2013_WEIGHTS, dsr
from gapwatch.core.stats.proportion import proportion
from gapwatch.core.stats.rate import crude_rate

__all__ = ["PER", "GroupStat", "GroupStats", "ReportOptions", "statistic_method"]

PER: Final = 100_000.0
_ESP_WEIGHT: Final = dict(zip(ESP_BANDS, ESP2013_WEIGHTS, strict=True))


@dataclass(frozen=True, slots=True)
class ReportOptions:
    levels: tuple[float, ...] = (0.95,)
    """Confidence levels; the first is the one gaps and benchmarks are reported at."""
    standardised: bool = False
    reference_ethnic_group: str = "white"
    sii_repetitions: int = 100_000
    sii_seed: int = 20130101


@dataclass(frozen=True, slots=True)
class GroupStat:
    group: str
    numerator: int
    denominator: float | None
    """Events (proportions), resident population (crude rates) or the population the
    DSR was standardised over; None when there is none."""
    estimate: Estimate
    note: str | None = None


def statistic_method(indicator: Indicator, options: ReportOptions) -> str:
    if indicator.kind == "proportion":
        return "Proportion with Wilson score limits (PHE phe_proportion)."
    if options.standardised:
        return (
            "Directly age-standardised rate per 100,000 per year on the 2013 European "
            "Standard Population (19 bands, 0-4 ... 90+), Dobson limits from Byar's count "
            "limits; suppressed when fewer than 10 events (PHE calculate_dsr). Events with "
            "no valid age are left out of the DSR and reported in the note."
        )
    return (
        "Crude rate per 100,000 per year with exact Poisson limits below 10 events and "
        "Byar's method from 10 (PHE phe_rate)."
    )


class GroupStats:
    """Computes one group's statistic for an area (``icbs``) over ``years``."""

    def __init__(
        self,
        indicator: Indicator,
        counts: Mapping[str, int],
        population: PopulationTable,
        icbs: Sequence[str],
        years: float,
        options: ReportOptions,
    ) -> None:
        self.indicator = indicator
        self.counts = counts
        self.population = population
        self.icbs = list(icbs)
        self.years = years
        self.options = options

    def __call__(self, by: str, group: str) -> GroupStat:
        ind = self.indicator
        numerator = read_count(self.counts, ind.numerator, by, group)
        levels = self.options.levels
        if ind.denominator is not None:
            events = read_count(self.counts, ind.denominator, by, group)
            if events == 0:
                return GroupStat(group, numerator, None, proportion(None, None, levels))
            return GroupStat(group, numerator, float(events), proportion(numerator, events, levels))
        if self.options.standardised:
            return self._standardised(by, group, numerator)
        people = self.population.people(self.icbs, by, group, ind.population_ages)
        if not people:
            return GroupStat(group, numerator, None, crude_rate(None, None, levels, PER))
        estimate = crude_rate(numerator, people * self.years, levels, PER)
        return GroupStat(group, numerator, people, estimate)

    def _standardised(self, by: str, group: str, numerator: int) -> GroupStat:
        ind = self.indicator
        levels = self.options.levels
        missing = crude_rate(None, None, levels, PER)
        if by in ("ethnic_group", "age_band") or group == UNKNOWN:
            why = (
                "no age-specific population for ethnic groups (Census 2021 TS021 has no age split)"
                if by == "ethnic_group"
                else "no population to standardise over"
            )
            if by == "age_band":
                why = "an age band cannot be age-standardised; use the crude rate"
            return GroupStat(group, numerator, None, missing, why)
        people = self.population.by_esp_band(self.icbs, by, group, ind.population_ages)
        by_band = esp_counts(self.counts, ind.numerator, by, group)
        no_age = by_band.pop(UNKNOWN, 0)
        bands = [b for b in ESP_BANDS if people.get(b, 0.0) > 0]
        lost = sum(n for b, n in by_band.items() if b not in bands)
        if not bands or lost:
            reason = (
                f"{lost} events in age bands with no resident population"
                if lost
                else "no resident population"
            )
            return GroupStat(group, numerator, None, missing, reason)
        result = dsr(
            [by_band.get(b, 0) for b in bands],
            [people[b] * self.years for b in bands],
            [_ESP_WEIGHT[b] for b in bands],
            levels,
            PER,
        )
        note = f"{no_age} events with no valid age are not in the DSR" if no_age else None
        return GroupStat(group, numerator, sum(people.values()), result.estimate, note)
