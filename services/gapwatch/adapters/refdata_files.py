"""Load reference data from the configured directory of gzip CSVs (../shared/data layout).

Mappings chosen here (documented in README "Reference data"):
- IMD is IoD 2025 on LSOA 2021; ICB is the April 2024 lookup.
- A 2011 LSOA code that no longer exists in 2021 (split, merged or irregular) resolves to
  the 2021 part with the median IMD rank among its parts, and to the ICB most of its
  parts lie in (ties: the lower ODS code). Deterministic and never mixes editions.
- ONS mid-2019 population (LSOA 2011) maps onto LSOA 2021 through the same lookup; a
  split LSOA's people are shared equally between its parts (no weights are published
  with the lookup), a merge sums. Totals are preserved exactly. The same people per
  LSOA 2021 and age band are kept for small-area rates (``ReferenceData.lsoa_population``).
- An LSOA's local authority district is IoD2025's LAD 2024.
"""

from __future__ import annotations

import csv
import gzip
import logging
from array import array
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path

from gapwatch.core.demographics import age_band, esp_band
from gapwatch.core.errors import ConfigError
from gapwatch.core.refdata import (
    LSOA_AGE_BANDS,
    Area,
    Icb,
    LsoaPopulation,
    PopCell,
    PopulationTable,
    ReferenceData,
    Trust,
    normalise_postcode,
)

__all__ = ["FILES", "load_reference_data"]

logger = logging.getLogger(__name__)

FILES = {
    "imd": "iod2025_lsoa21_england.csv.gz",
    "lsoa_icb": "lsoa21_sicbl24_icb24_nhser_lookup_england.csv.gz",
    "icbs": "icb24_nhser_lookup_england.csv.gz",
    "lsoa11_21": "lsoa11_lsoa21_lookup_ew.csv.gz",
    "postcodes": "postcode_lsoa21_trafford_onspd_feb2025.csv.gz",
    "trusts": "nhs_trusts_ods_etr.csv.gz",
    "catchment": "nhs_trust22_icb22_catchment_ohid.csv.gz",
    "population": "ons_mye2019_lsoa11_sya_sex_ew.csv.gz",
    "ethnicity": "census2021_ethnic_group_lsoa21_ew.csv.gz",
}
OPTIONAL = {"postcodes", "catchment", "ethnicity"}


def _rows(directory: Path, key: str) -> Iterator[dict[str, str]]:
    path = directory / FILES[key]
    if not path.is_file():
        if key in OPTIONAL:
            logger.warning("optional reference file missing path=%s", path)
            return
        raise ConfigError(f"reference file missing: {path}")
    with gzip.open(path, "rt", newline="", encoding="utf-8") as handle:
        yield from csv.DictReader(handle)


def load_reference_data(directory: Path, *, with_population: bool = True) -> ReferenceData:
    icb_of = {r["lsoa21_code"]: r["icb24_ods_code"] for r in _rows(directory, "lsoa_icb")}
    areas: dict[str, Area] = {}
    lads: dict[str, str] = {}
    lad_codes: dict[str, str] = {}  # one str object per LAD, not one per LSOA
    for r in _rows(directory, "imd"):
        code = r["lsoa21_code"]
        icb = icb_of.get(code)
        if icb is None:
            continue
        lad = lad_codes.setdefault(r["lad24_code"], r["lad24_code"])
        lads.setdefault(lad, r["lad24_name"])
        areas[code] = Area(
            code, icb, int(r["imd_rank"]), int(r["imd_decile"]), int(r["imd_quintile"]), lad
        )
    if not areas:
        raise ConfigError(f"no LSOA 2021 areas loaded from {directory}")

    parts: dict[str, list[str]] = defaultdict(list)
    for r in _rows(directory, "lsoa11_21"):
        parts[r["lsoa11_code"]].append(r["lsoa21_code"])
    changed: set[str] = set()
    resolved: dict[str, Area] = dict(areas)
    for code11, codes21 in parts.items():
        if code11 in areas:
            continue
        known = sorted((areas[c] for c in codes21 if c in areas), key=lambda a: a.imd_rank)
        if not known:
            continue
        median = known[(len(known) - 1) // 2]
        icb = sorted(Counter(a.icb for a in known).items(), key=lambda kv: (-kv[1], kv[0]))[0][0]
        resolved[code11] = Area(
            median.lsoa21, icb, median.imd_rank, median.imd_decile, median.imd_quintile, median.lad
        )
        changed.add(code11)

    postcodes = {
        normalise_postcode(r["postcode"]): r["lsoa21_code"] for r in _rows(directory, "postcodes")
    }
    icbs = {
        r["icb24_ods_code"]: Icb(
            r["icb24_ods_code"],
            r["icb24_code"],
            r["icb24_name"],
            r["nhser_ods_code"],
            r["nhser_name"],
        )
        for r in _rows(directory, "icbs")
    }
    catchment: dict[str, list[tuple[str, float]]] = defaultdict(list)
    for r in _rows(directory, "catchment"):
        if r["icb22_ods_code"] in icbs:
            catchment[r["nhs_trust22_code"]].append(
                (r["icb22_ods_code"], float(r["proportion_trust_came_from_icb"]))
            )
    trusts: dict[str, Trust] = {}
    for r in _rows(directory, "trusts"):
        code = r["org_code"]
        shares = tuple(sorted(catchment.get(code, []), key=lambda kv: -kv[1]))
        home = shares[0][0] if shares else (r["icb_ods_code"] or None)
        trusts[code] = Trust(code, r["org_name"], home if home in icbs else None, shares)

    population, lsoa_population = (
        _population(directory, parts, areas)
        if with_population
        else (PopulationTable({}, {}), LsoaPopulation.build({}))
    )
    return ReferenceData(
        imd_edition="IoD2025",
        geography="LSOA 2021, ICB April 2024",
        areas=resolved,
        lsoa11_changed=frozenset(changed),
        postcodes=postcodes,
        icbs=icbs,
        trusts=trusts,
        population=population,
        lads=lads,
        lsoa_population=lsoa_population,
    )


_SEX_OF = {"M": "male", "F": "female"}


def _population(
    directory: Path, parts: dict[str, list[str]], areas: dict[str, Area]
) -> tuple[PopulationTable, LsoaPopulation]:
    """The ICB population table, and the people per LSOA 2021 and age band."""
    bands = [(age_band(a)[0], esp_band(a)) for a in range(90)] + [("80+", "90+")]
    columns = [f"age_{a}" for a in range(90)] + ["age_90_plus"]
    cells: dict[str, dict[PopCell, float]] = defaultdict(lambda: defaultdict(float))
    band_index = {band: i for i, band in enumerate(LSOA_AGE_BANDS)}
    # Per LSOA 2021, its bands' people in one flat array (LsoaPopulation's layout).
    lsoa_start: dict[str, int] = {}
    lsoa_people = array("d")
    no_people = [0.0] * len(LSOA_AGE_BANDS)
    for r in _rows(directory, "population"):
        code11 = r["lsoa11_code"]
        if not code11.startswith("E"):
            continue
        targets = [areas[c] for c in parts.get(code11, [code11]) if c in areas]
        if not targets:
            continue
        share = 1.0 / len(targets)
        sex = _SEX_OF[r["sex"]]
        by_band: dict[tuple[str, str], float] = defaultdict(float)
        for pair, column in zip(bands, columns, strict=True):
            by_band[pair] += float(r[column])
        for area in targets:
            icb_cells = cells[area.icb]
            decile = str(area.imd_decile)
            start = lsoa_start.get(area.lsoa21)
            if start is None:
                start = lsoa_start[area.lsoa21] = len(lsoa_people)
                lsoa_people.extend(no_people)
            for (band, esp), people in by_band.items():
                icb_cells[(decile, sex, band, esp)] += people * share
                lsoa_people[start + band_index[band]] += people * share
    ethnic: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for r in _rows(directory, "ethnicity"):
        found = areas.get(r["lsoa21_code"])
        if found is None:
            continue
        for group in ("white", "mixed", "asian", "black", "other"):
            ethnic[found.icb][group] += float(r[f"ethnic_group_{group}"])
    table = PopulationTable(
        {k: dict(v) for k, v in cells.items()}, {k: dict(v) for k, v in ethnic.items()}
    )
    return table, LsoaPopulation(lsoa_start, lsoa_people)
