"""What each encounter counts towards: the measures behind indicator numerators and
denominators. Indicators are declared over these names in ``indicators.py``.

Definitions (docs/nhs-inequalities.md §4):
- emergency admission: ADMISSION METHOD 21-25, 28, 2A-2D; elective 11-13;
- outpatient DNA: attendance status 3; appointments with an outcome are 3, 5, 6, 7
  (cancellations 2 and 4 and future appointments 0 are excluded; 7, late and not seen,
  counts as attended-but-not-seen, not as a DNA, as in HES);
- ED breaches: more than 240 / 720 minutes in department;
- waiting over 18 / 52 weeks: more than 18 / 52 completed weeks at the snapshot.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

__all__ = ["MEASURES", "measures_for"]

EMERGENCY_METHODS: Final = frozenset({"21", "22", "23", "24", "25", "28", "2A", "2B", "2C", "2D"})
ELECTIVE_METHODS: Final = frozenset({"11", "12", "13"})
OUTPATIENT_WITH_OUTCOME: Final = frozenset({"3", "5", "6", "7"})

MEASURES: Final[dict[str, str]] = {
    "events": "all valid encounter events",
    "ethnicity_unknown": "events whose ethnic category is missing, not stated or invalid",
    "residence_unknown": "events whose LSOA/postcode is missing or not an English LSOA",
    "ed_arrival": "ED arrivals",
    "ed_departure_timed": "ED departures with a known time in department",
    "ed_breach_4h": "ED departures after more than 240 minutes in department",
    "ed_breach_12h": "ED departures after more than 720 minutes in department",
    "admission": "admissions (any method)",
    "admission_emergency": "emergency admissions",
    "admission_emergency_u18": "emergency admissions of people aged under 18",
    "admission_elective": "elective admissions",
    "outpatient_outcome": "outpatient appointments attended or not attended (codes 3,5,6,7)",
    "outpatient_dna": "outpatient appointments not attended without warning (code 3)",
    "waiting": "waiting-list snapshot records",
    "waiting_over_18w": "waiting-list records over 18 weeks",
    "waiting_over_52w": "waiting-list records over 52 weeks",
}


def measures_for(record: Mapping[str, object], age: int | None) -> tuple[str, ...]:
    """The event-type measures an encounter counts towards (besides ``events``)."""
    event_type = record["event_type"]
    if event_type == "ed_arrival":
        return ("ed_arrival",)
    if event_type == "ed_departure":
        minutes = record.get("minutes_in_department")
        if not isinstance(minutes, int) or minutes < 0:
            return ()
        if minutes > 720:
            return ("ed_departure_timed", "ed_breach_4h", "ed_breach_12h")
        if minutes > 240:
            return ("ed_departure_timed", "ed_breach_4h")
        return ("ed_departure_timed",)
    if event_type == "admission":
        method = record.get("admission_method")
        if method in EMERGENCY_METHODS:
            if age is not None and 0 <= age < 18:
                return ("admission", "admission_emergency", "admission_emergency_u18")
            return ("admission", "admission_emergency")
        if method in ELECTIVE_METHODS:
            return ("admission", "admission_elective")
        return ("admission",)
    if event_type == "outpatient_appointment":
        status = record.get("attendance_status")
        if status == "3":
            return ("outpatient_outcome", "outpatient_dna")
        if status in OUTPATIENT_WITH_OUTCOME:
            return ("outpatient_outcome",)
        return ()
    if event_type == "waiting_list_snapshot":
        weeks = record.get("weeks_waiting")
        if not isinstance(weeks, int) or weeks < 0:
            return ("waiting",)
        if weeks > 52:
            return ("waiting", "waiting_over_18w", "waiting_over_52w")
        if weeks > 18:
            return ("waiting", "waiting_over_18w")
        return ("waiting",)
    return ()
