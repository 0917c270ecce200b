"""Reference-data types: areas, ICBs, trusts and resident populations.

These are plain values built by ``adapters.refdata_files`` from the published files; the
core only reads them. Deprivation is always *national* (rank-based, 1 = most deprived).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

__all__ = ["Area", "Icb", "PopulationTable", "ReferenceData", "Trust", "normalise_postcode"]


@dataclass(frozen=True, slots=True)
class Area:
    """A 2021 LSOA with what enrichment needs: its ICB (ODS code) and national IMD."""

    lsoa21: str
    icb: str
    imd_rank: int
    imd_decile: int
    imd_quintile: int


@dataclass(frozen=True, slots=True)
class Icb:
    ods_code: str
    ons_code: str
    name: str
    region_ods_code: str
    region_name: str


@dataclass(frozen=True, slots=True)
class Trust:
    """An NHS trust; ``home_icb`` is where residence-unknown events are attributed."""

    ods_code: str
    name: str
    home_icb: str | None
    catchment: tuple[tuple[str, float], ...] = ()


# A population cell: (imd_quintile, sex group, age band) -> people. Ethnic group comes
# from a different source (Census 2021) without an age split, so it is kept apart.
PopCell = tuple[str, str, str]


@dataclass(frozen=True, slots=True)
class PopulationTable:
    """Resident population per ICB, for rate denominators.

    ``cells[icb][(imd_quintile, sex, age_band)]`` comes from ONS mid-2019 LSOA 2011
    estimates mapped onto LSOA 2021 (see adapters.refdata_files for the mapping);
    ``ethnic[icb][group]`` comes from Census 2021 TS021 usual residents.
    """

    cells: Mapping[str, Mapping[PopCell, float]]
    ethnic: Mapping[str, Mapping[str, float]]

    def people(
        self,
        icbs: Iterable[str],
        by: str,
        group: str,
        ages: frozenset[str] | None = None,
    ) -> float | None:
        """Resident population of ``group`` in breakdown ``by`` over ``icbs``.

        Returns None where no denominator exists (unknown groups, indeterminate sex,
        ethnic group restricted by age).
        """
        if by == "ethnic_group":
            if ages is not None:
                return None
            return sum(self.ethnic.get(icb, {}).get(group, 0.0) for icb in icbs) or None
        index = {"imd_quintile": 0, "sex": 1, "age_band": 2}.get(by)
        if by != "total" and index is None:
            return None
        total = 0.0
        for icb in icbs:
            for cell, people in self.cells.get(icb, {}).items():
                if ages is not None and cell[2] not in ages:
                    continue
                if index is None or cell[index] == group:
                    total += people
        return total or None


@dataclass(frozen=True, slots=True)
class ReferenceData:
    """Everything enrichment and the API need, loaded once per process."""

    imd_edition: str
    geography: str
    areas: Mapping[str, Area]
    """LSOA code (2021, and 2011 codes that no longer exist, resolved) -> Area."""
    lsoa11_changed: frozenset[str]
    """2011 codes that were split, merged or changed: resolved through the lookup."""
    postcodes: Mapping[str, str]
    """Normalised postcode -> LSOA 2021 code."""
    icbs: Mapping[str, Icb]
    trusts: Mapping[str, Trust]
    population: PopulationTable


def normalise_postcode(raw: str) -> str:
    """Upper-case, remove spaces, then put one space before the inward code (last 3)."""
    compact = "".join(raw.split()).upper()
    if len(compact) < 5:
        return compact
    return f"{compact[:-3]} {compact[-3:]}"
