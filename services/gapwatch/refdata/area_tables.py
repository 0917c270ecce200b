"""One transform per small-area (LSOA) output file: deprivation, the 2011->2021 lookup,
population, ethnicity and postcodes.

Each takes the ``Records`` of one input (see ``readers``) and returns the output
``Table`` in the layout ``adapters.refdata_files`` reads, checking values row by row so
an error names the file, row and column. The NHS organisation files are built in
``nhs_tables``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from gapwatch.adapters.refdata_files import FILES
from gapwatch.core.refdata import normalise_postcode
from gapwatch.refdata.readers import Records
from gapwatch.refdata.sources import (
    AGES,
    ETHNICITY,
    LSOA11_21,
    LSOA21_CODE,
    LSOA_EW_CODE,
    SourceError,
)
from gapwatch.refdata.tables import Cell, Row, Table
from gapwatch.refdata.validate import check_iod, unique

__all__ = [
    "LSOA11_21_HEADER",
    "POPULATION_HEADER",
    "POSTCODE_HEADER",
    "PostcodeTally",
    "ethnicity_table",
    "iod_table",
    "lsoa11_lsoa21_table",
    "population_rows",
    "population_table",
    "postcode_rows",
]

_IDENTITY = ("lsoa21_code", "lsoa21_name", "lad24_code", "lad24_name")


def iod_table(records: Records) -> Table:
    """IoD2025 File 7 -> ``iod2025_lsoa21_england``; ``imd_quintile`` is ceil(decile / 2).

    Domain and sub-domain columns are kept when present. IDACI, IDAOPI and the population
    denominators are left out, as in the shared layout (PROVENANCE.md §2).
    """
    measures = [c for c in records.columns if c not in _IDENTITY]
    header = [*_IDENTITY]
    for name in measures:
        header.append(name)
        if name == "imd_decile":
            header.append("imd_quintile")
    rows: list[Row] = []
    for line, r in records.rows:
        out: list[Cell] = [records.code(line, "lsoa21_code", r["lsoa21_code"], LSOA21_CODE)]
        out += [r["lsoa21_name"], r["lad24_code"], r["lad24_name"]]
        for name in measures:
            if name.endswith("_score"):
                out.append(records.number(line, name, r[name]))
                continue
            value = records.integer(line, name, r[name])
            out.append(value)
            if name.endswith("_decile") and not 1 <= value <= 10:
                raise records.fail(line, f"{name} is {value}, outside 1..10")
            if name == "imd_decile":
                out.append(math.ceil(value / 2))
        rows.append(tuple(out))
    rows.sort(key=lambda row: row[0])
    table = Table(FILES["imd"], tuple(header), rows)
    check_iod(table, records)
    return table


LSOA11_21_HEADER = tuple(c.name for c in LSOA11_21.columns)


def lsoa11_lsoa21_table(records: Records) -> Table:
    """ONS LSOA11->LSOA21 lookup. ArcGIS exports can repeat a row; exact repeats are
    dropped, a pair that repeats with different details is an error."""
    pairs: dict[tuple[str, str], Row] = {}
    for line, r in records.rows:
        old = records.code(line, "lsoa11_code", r["lsoa11_code"], LSOA_EW_CODE)
        new = records.code(line, "lsoa21_code", r["lsoa21_code"], LSOA_EW_CODE)
        change = r["change_code"].upper()
        if change not in {"U", "S", "M", "X"}:
            raise records.fail(line, f"change_code is {r['change_code']!r}, expected U, S, M or X")
        row = (
            old,
            r["lsoa11_name"],
            new,
            r["lsoa21_name"],
            change,
            r["lad22_code"],
            r["lad22_name"],
        )
        if pairs.setdefault((old, new), row) != row:
            raise records.fail(line, f"{old} -> {new} appears twice with different details")
    if not pairs:
        raise SourceError(f"{records.path.name}: no data rows")
    return Table(FILES["lsoa11_21"], LSOA11_21_HEADER, [pairs[k] for k in sorted(pairs)])


def population_rows(records: Records, sex: str) -> dict[str, Row]:
    """One SAPE22DT2 sheet -> LSOA11 code -> output row for ``sex`` ("F" or "M").

    ``all_ages`` is the sum of the age columns; where the sheet has "All Ages" it must agree.
    """
    rows: dict[str, Row] = {}
    for line, r in records.rows:
        code = records.code(line, "lsoa11_code", r["lsoa11_code"], LSOA_EW_CODE)
        ages = [records.integer(line, name, r[name]) for name in AGES]
        if any(a < 0 for a in ages):
            raise records.fail(line, "a population count is negative")
        total = sum(ages)
        if r.get("all_ages") and records.integer(line, "all_ages", r["all_ages"]) != total:
            raise records.fail(
                line, f"All Ages is {r['all_ages']} but the ages 0..90+ add up to {total}"
            )
        if code in rows:
            raise records.fail(line, f"{code} appears twice")
        rows[code] = (code, r["lsoa11_name"], r["lad19_code"], r["lad19_name"], sex, total, *ages)
    if not rows:
        raise SourceError(f"{records.path.name}: no data rows")
    return rows


POPULATION_HEADER = (
    "lsoa11_code", "lsoa11_name", "lad19_code", "lad19_name", "sex", "all_ages", *AGES,
)  # fmt: skip


def population_table(
    female: Mapping[str, Row], male: Mapping[str, Row], female_path: Path, male_path: Path
) -> Table:
    if female.keys() != male.keys():
        only = sorted(female.keys() ^ male.keys())
        raise SourceError(
            f"{female_path.name} and {male_path.name} cover different LSOAs "
            f"({len(only)} differ, e.g. {', '.join(only[:5])}): export both sheets of the "
            "same workbook"
        )
    if all(female[k][5:] == male[k][5:] for k in female):
        raise SourceError(
            f"{female_path.name} and {male_path.name} hold identical numbers: "
            "the same sheet was exported twice"
        )
    rows = [row for code in sorted(female) for row in (female[code], male[code])]
    return Table(FILES["population"], POPULATION_HEADER, rows)


def ethnicity_table(records: Records) -> Table:
    """Census 2021 TS021 (Nomis bulk, LSOA file) -> the five high-level groups."""
    rows: list[Row] = []
    for line, r in records.rows:
        code = records.code(line, "lsoa21_code", r["lsoa21_code"], LSOA_EW_CODE)
        total = records.integer(line, "usual_residents_total", r["usual_residents_total"])
        groups = [records.integer(line, n, r[n]) for n in records.columns[2:]]
        if sum(groups) != total:
            raise records.fail(line, f"the five groups add up to {sum(groups)}, not {total}")
        rows.append((code, total, *groups))
    if not rows:
        raise SourceError(f"{records.path.name}: no data rows")
    rows.sort(key=lambda row: str(row[0]))
    unique((row[0] for row in rows), f"{records.path.name}: lsoa21_code")
    return Table(FILES["ethnicity"], tuple(c.name for c in ETHNICITY.columns), rows)


POSTCODE_HEADER = (
    "postcode", "lsoa21_code", "lsoa21_name", "msoa21_code", "msoa21_hcl_name", "ward24_code",
    "ward24_name", "lad24_code", "lad24_name", "locality", "lon", "lat",
)  # fmt: skip


@dataclass(slots=True)
class PostcodeTally:
    """Counts from ``postcode_rows``, which streams its rows straight to the writer."""

    kept: int = 0
    skipped: int = 0


def postcode_rows(records: Records, lsoas: Table, tally: PostcodeTally) -> Iterator[Row]:
    """ONSPD/NSPL -> postcodes in English LSOAs of the ICB lookup, in the file's order.

    Terminated postcodes are kept (old records still carry them). LSOA and LAD names come
    from the ICB lookup; names ONSPD keeps in separate files (MSOA, ward) stay empty.
    """
    info = {str(r[0]): (str(r[1]), str(r[11]), str(r[12])) for r in lsoas.rows}
    seen: set[str] = set()
    for line, r in records.rows:
        found = info.get(r["lsoa21_code"])
        if found is None:
            tally.skipped += 1
            continue
        postcode = normalise_postcode(r["postcode"])
        if postcode in seen:
            raise records.fail(line, f"postcode {postcode} appears twice")
        seen.add(postcode)
        tally.kept += 1
        name, lad_code, lad_name = found
        yield (
            postcode, r["lsoa21_code"], name, r.get("msoa21_code", ""), "",
            r.get("ward24_code", ""), "", lad_code, lad_name, "", r.get("lon", ""),
            r.get("lat", ""),
        )  # fmt: skip
