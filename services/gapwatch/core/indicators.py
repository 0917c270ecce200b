"""The indicator catalogue, declared as data.

An indicator is a numerator measure over either another measure (a proportion of events)
or the resident population (a rate per 100,000 per year). Adding an indicator over
existing measures needs no re-ingest: measures are what the store counts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

from gapwatch.core.demographics import AGE_BANDS, ETHNIC_GROUPS, SEX_GROUPS, UNKNOWN

__all__ = ["BREAKDOWNS", "CATALOGUE", "Indicator"]

BREAKDOWNS: Final[dict[str, tuple[str, ...]]] = {
    "imd_quintile": ("1", "2", "3", "4", "5", UNKNOWN),
    "imd_decile": (*(str(d) for d in range(1, 11)), UNKNOWN),
    "ethnic_group": ETHNIC_GROUPS,
    "age_band": AGE_BANDS,
    "sex": SEX_GROUPS,
}
"""Breakdown id -> group ids. IMD group "1" is the most deprived (Core20 = quintile 1)."""

UNDER_18: Final = frozenset({"0-4", "5-17"})


@dataclass(frozen=True, slots=True)
class Indicator:
    id: str
    title: str
    kind: Literal["rate", "proportion"]
    numerator: str
    denominator: str | None
    """Measure for proportions; None for rates (resident population)."""
    improvement: Literal["lower", "higher", "neutral"]
    description: str
    default_window: str = "28d"
    population_ages: frozenset[str] | None = None
    """Rates restricted to some age bands use only that population."""
    breakdowns: tuple[str, ...] = tuple(BREAKDOWNS)

    @property
    def unit(self) -> str:
        return "per 100,000 population per year" if self.kind == "rate" else "proportion (0-1)"


_ALL = tuple(BREAKDOWNS)

CATALOGUE: Final[dict[str, Indicator]] = {
    i.id: i
    for i in (
        Indicator(
            "ed_attendance_rate",
            "A&E attendance rate",
            "rate",
            "ed_arrival",
            None,
            "lower",
            "ED arrivals (ECDS) per 100,000 resident population per year.",
        ),
        Indicator(
            "emergency_admission_rate",
            "Emergency admission rate",
            "rate",
            "admission_emergency",
            None,
            "lower",
            "Emergency admissions (admission method 21-25, 28, 2A-2D) per 100,000 "
            "resident population per year.",
        ),
        Indicator(
            "emergency_admission_rate_u18",
            "Emergency admission rate, under-18s",
            "rate",
            "admission_emergency_u18",
            None,
            "lower",
            "Emergency admissions of people aged 0-17 per 100,000 residents aged 0-17 "
            "per year. No ethnic-group denominator by age exists, so that breakdown has "
            "counts but no rates.",
            population_ages=UNDER_18,
        ),
        Indicator(
            "outpatient_dna_proportion",
            "Outpatient did-not-attend proportion",
            "proportion",
            "outpatient_dna",
            "outpatient_outcome",
            "lower",
            "Appointments not attended without warning (code 3) over appointments "
            "attended or not attended (codes 3, 5, 6, 7).",
        ),
        Indicator(
            "ed_4h_breach_proportion",
            "ED 4-hour breach proportion",
            "proportion",
            "ed_breach_4h",
            "ed_departure_timed",
            "lower",
            "ED departures after more than 4 hours in department over departures with "
            "a known time in department.",
            default_window="7d",
        ),
        Indicator(
            "ed_12h_breach_proportion",
            "ED 12-hour breach proportion",
            "proportion",
            "ed_breach_12h",
            "ed_departure_timed",
            "lower",
            "ED departures after more than 12 hours in department over departures with "
            "a known time in department.",
            default_window="7d",
        ),
        Indicator(
            "elective_wait_over_18w_proportion",
            "Elective waits over 18 weeks",
            "proportion",
            "waiting_over_18w",
            "waiting",
            "lower",
            "Waiting-list snapshot records over 18 completed weeks over all records.",
        ),
        Indicator(
            "elective_wait_over_52w_proportion",
            "Elective waits over 52 weeks",
            "proportion",
            "waiting_over_52w",
            "waiting",
            "lower",
            "Waiting-list snapshot records over 52 completed weeks over all records.",
        ),
        Indicator(
            "ethnicity_unknown_proportion",
            "Ethnicity not known (data quality)",
            "proportion",
            "ethnicity_unknown",
            "events",
            "lower",
            "Share of events whose ethnic category is missing, not stated (Z), not "
            "known (99) or invalid.",
        ),
        Indicator(
            "residence_unknown_proportion",
            "Residence not known (data quality)",
            "proportion",
            "residence_unknown",
            "events",
            "lower",
            "Share of events with no LSOA or postcode that resolves to an English LSOA. "
            "These are attributed to the provider's home ICB.",
        ),
    )
}
