"""Reference-data types: areas, ICBs, trusts and resident populations.

These are plain values built by ``adapters.refdata_files`` from the published files; the
core only reads them. Deprivation is always *national* (rank-based, 1 = most deprived).
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from gapwatch.core.demographics import AGE_BANDS, UNKNOWN

__all__ = [
    "LSOA_AGE_BANDS",
    "Area",
    "Icb",
    "LsoaPopulation",
    "PopulationTable",
    "ReferenceData",
    "Trust",
    "normalise_postcode",
]


@dataclass(frozen=True, slots=True)
class Area:
    """A 2021 LSOA with what enrichment needs: its ICB (ODS code) and national IMD, and
    its local authority district (LAD 2024 code, as IoD2025 publishes it; "" if unknown)."""

    lsoa21: str
    icb: str
    imd_rank: int
    imd_decile: int
    imd_quintile: int
    lad: str = ""


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


LSOA_AGE_BANDS = tuple(b for b in AGE_BANDS if b != UNKNOWN)
"""The age bands of ``ReferenceData.lsoa_people`` (every band with a population)."""


@dataclass(frozen=True, slots=True)
class LsoaPopulation:
    """Residents per LSOA 2021 and breakdown age band (``LSOA_AGE_BANDS``), packed as
    one array of floats (six per LSOA): 33,755 LSOAs take ~4 MB, not ~15 MB of tuples."""

    index: Mapping[str, int]
    """LSOA 2021 code -> offset of its first band in ``people``."""
    people: Sequence[float]

    @classmethod
    def build(cls, rows: Mapping[str, Sequence[float]]) -> LsoaPopulation:
        width = len(LSOA_AGE_BANDS)
        index: dict[str, int] = {}
        people = array("d")
        for code, by_band in rows.items():
            if len(by_band) != width:
                raise ValueError(f"{code}: {len(by_band)} age bands, expected {width}")
            index[code] = len(people)
            people.extend(by_band)
        return cls(index, people)

    def of(self, lsoa21: str, ages: frozenset[str] | None = None) -> float | None:
        """Residents of one LSOA (of the given age bands only); None if unknown or 0."""
        start = self.index.get(lsoa21)
        if start is None:
            return None
        people = self.people
        if ages is None:
            total = sum(people[start : start + len(LSOA_AGE_BANDS)])
        else:
            total = sum(people[start + i] for i, b in enumerate(LSOA_AGE_BANDS) if b in ages)
        return total or None

    def __len__(self) -> int:
        return len(self.index)


# A population cell: (imd_decile, sex group, age band, ESP2013 band) -> people. Both age
# splits are kept because the breakdown bands (5-17) and the ESP2013 bands (15-19) cross.
# Ethnic group comes from a different source (Census 2021) without an age split, so it is
# kept apart.
PopCell = tuple[str, str, str, str]
_QUINTILE_OF_DECILE = {str(d): str((d + 1) // 2) for d in range(1, 11)}


@dataclass(frozen=True, slots=True)
class PopulationTable:
    """Resident population per ICB, for rate denominators.

    ``cells[icb][(imd_decile, sex, age_band, esp_band)]`` comes from ONS mid-2019 LSOA
    2011 estimates mapped onto LSOA 2021 (see adapters.refdata_files for the mapping);
    ``ethnic[icb][group]`` comes from Census 2021 TS021 usual residents.
    """

    cells: Mapping[str, Mapping[PopCell, float]]
    ethnic: Mapping[str, Mapping[str, float]]
    # Answers per (icbs, by, group, ages): the table never changes once loaded, and the API
    # asks the same few questions on every request (England sums ~17,000 cells).
    _memo: dict[tuple[object, ...], dict[str, float]] = field(
        default_factory=dict, compare=False, repr=False
    )

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
        total = sum(self.by_esp_band(icbs, by, group, ages).values())
        return total or None

    def by_esp_band(
        self,
        icbs: Iterable[str],
        by: str,
        group: str,
        ages: frozenset[str] | None = None,
    ) -> dict[str, float]:
        """People of ``group`` per ESP2013 band (the denominators of a DSR); empty when
        the breakdown has no age-specific population (ethnic group)."""
        icb_list = tuple(icbs)
        key = (icb_list, by, group, ages)
        found = self._memo.get(key)
        if found is None:
            found = self._memo[key] = self._by_esp_band(icb_list, by, group, ages)
        return dict(found)

    def _by_esp_band(
        self, icbs: tuple[str, ...], by: str, group: str, ages: frozenset[str] | None
    ) -> dict[str, float]:
        out: dict[str, float] = {}
        for icb in icbs:
            for cell, people in self.cells.get(icb, {}).items():
                if ages is not None and cell[2] not in ages:
                    continue
                if _matches(cell, by, group):
                    out[cell[3]] = out.get(cell[3], 0.0) + people
        return out


def _matches(cell: PopCell, by: str, group: str) -> bool:
    decile, sex, age, _ = cell
    if by == "total":
        return True
    if by == "imd_quintile":
        return _QUINTILE_OF_DECILE.get(decile) == group
    if by == "imd_decile":
        return decile == group
    if by == "sex":
        return sex == group
    if by == "age_band":
        return age == group
    return False


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
    lads: Mapping[str, str] = field(default_factory=dict)
    """LAD 2024 code -> name."""
    lsoa_population: LsoaPopulation = field(default_factory=lambda: LsoaPopulation.build({}))
    """Residents per LSOA 2021, from the same source and mapping as ``population``
    (empty when populations are not loaded)."""


def normalise_postcode(raw: str) -> str:
    """Upper-case, remove spaces, then put one space before the inward code (last 3)."""
    compact = "".join(raw.split()).upper()
    if len(compact) < 5:
        return compact
    return f"{compact[:-3]} {compact[-3:]}"
