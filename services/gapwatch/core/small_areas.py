"""Small areas: deprived LSOAs inside mostly affluent places.

A "pocket of deprivation" is an LSOA 2021 in national IMD quintile 1 (the most deprived
20% of England, Core20) whose local authority district (LAD 2024) has most of its
residents, more than half, living in LSOAs of national quintiles 4 and 5 (the least
deprived 40%).

Why these two thresholds:
- Quintile 1 is Core20, the group NHS England's inequalities work already targets, so
  a flagged LSOA is one the ICB's Core20 figures count but a district-level view hides.
- "Most residents in quintiles 4-5" reads directly as "a mostly affluent place" and is
  about where people live. A population-weighted mean decile would be pulled down by the
  very pockets being looked for, and a district of average deprivation would pass a
  mean-decile bar of 6 with barely 40% of its people in quintiles 4-5; the 40% is what
  England as a whole has, so "more than half" means clearly more affluent than England.

Population weights are the same resident populations the rates divide by
(``ReferenceData.lsoa_population``); without them every LSOA counts as one person.
"""

from __future__ import annotations

from dataclasses import dataclass

from gapwatch.core.refdata import Area, ReferenceData

__all__ = [
    "AFFLUENT_QUINTILES",
    "AFFLUENT_SHARE",
    "DEPRIVED_QUINTILE",
    "FLAG_DEFINITION",
    "LadProfile",
    "deprived_in_affluent_place",
    "lad_profiles",
]

DEPRIVED_QUINTILE = 1
AFFLUENT_QUINTILES = frozenset({4, 5})
AFFLUENT_SHARE = 0.5
"""A LAD is mostly affluent when more than this share of its residents live in
``AFFLUENT_QUINTILES``."""
FLAG_DEFINITION = (
    "deprived_in_affluent_place: the LSOA is in national IMD quintile 1 (most deprived "
    "20%, Core20) and more than half of its local authority district's residents live "
    "in LSOAs of national quintiles 4-5 (least deprived 40%)."
)


@dataclass(frozen=True, slots=True)
class LadProfile:
    code: str
    name: str
    people: float
    affluent_share: float
    """Share of residents in LSOAs of national IMD quintiles 4-5."""

    @property
    def mostly_affluent(self) -> bool:
        return self.affluent_share > AFFLUENT_SHARE


def lad_profiles(ref: ReferenceData) -> dict[str, LadProfile]:
    """Every LAD's residents and the share of them in quintiles 4-5 (LSOA 2021 entries
    only: 2011 codes in ``ref.areas`` point at 2021 areas already counted)."""
    people: dict[str, float] = {}
    affluent: dict[str, float] = {}
    for code, area in ref.areas.items():
        if code != area.lsoa21 or not area.lad:
            continue
        weight = ref.lsoa_population.of(code) if len(ref.lsoa_population) else 1.0
        if not weight:
            continue
        people[area.lad] = people.get(area.lad, 0.0) + weight
        if area.imd_quintile in AFFLUENT_QUINTILES:
            affluent[area.lad] = affluent.get(area.lad, 0.0) + weight
    return {
        lad: LadProfile(lad, ref.lads.get(lad, ""), total, affluent.get(lad, 0.0) / total)
        for lad, total in people.items()
    }


def deprived_in_affluent_place(area: Area, lads: dict[str, LadProfile]) -> bool:
    if area.imd_quintile != DEPRIVED_QUINTILE:
        return False
    lad = lads.get(area.lad)
    return lad is not None and lad.mostly_affluent
