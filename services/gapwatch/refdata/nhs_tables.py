"""One transform per NHS-organisation output file: regions, the LSOA -> sub-ICB -> ICB ->
region lookups, and the NHS trusts.

The ONS lookup stops at the ICB, so each ICB's NHS England region comes from the ONS
region lookup when given, else from the April 2024 table embedded below. Trusts come from
the header-less ODS ``etr`` extract and are joined to those ICBs and regions.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from gapwatch.adapters.refdata_files import FILES
from gapwatch.refdata.readers import Records
from gapwatch.refdata.sources import ICB_ONS_CODE, LSOA21_CODE, SourceError, normalise_header
from gapwatch.refdata.tables import Row, Table
from gapwatch.refdata.validate import unique

__all__ = [
    "TRUSTS_HEADER",
    "NhsGeography",
    "Region",
    "embedded_regions",
    "nhs_geography",
    "region_map",
    "trusts_table",
]


@dataclass(frozen=True, slots=True)
class Region:
    code: str
    ods_code: str
    name: str


# ICB (ODS code) -> NHS England region (ODS code), April 2024 ICBs, and the region codes.
# From the ODS ``eccg`` extract as described in PROVENANCE.md §4; used only when the build
# is given no --region-lookup. 42 ICBs: NW 3, NE&Y 4, Midlands 11, EoE 6, London 5, SE 6, SW 7.
_ICB24_REGION = """
QE1 Y62 QF7 Y63 QGH Y60 QH8 Y61 QHG Y61 QHL Y60 QHM Y63 QJ2 Y60 QJG Y61 QJK Y58 QJM Y60
QK1 Y60 QKK Y56 QKS Y59 QM7 Y61 QMF Y56 QMJ Y56 QMM Y61 QNC Y60 QNQ Y59 QNX Y59 QOC Y60
QOP Y62 QOQ Y63 QOX Y58 QPM Y60 QR1 Y58 QRL Y59 QRV Y56 QSL Y58 QT1 Y60 QT6 Y58 QU9 Y59
QUA Y60 QUE Y61 QUY Y58 QVV Y58 QWE Y56 QWO Y63 QWU Y60 QXU Y59 QYG Y62
"""
_REGIONS = {
    "Y56": Region("E40000003", "Y56", "London"),
    "Y58": Region("E40000006", "Y58", "South West"),
    "Y59": Region("E40000005", "Y59", "South East"),
    "Y60": Region("E40000011", "Y60", "Midlands"),
    "Y61": Region("E40000007", "Y61", "East of England"),
    "Y62": Region("E40000010", "Y62", "North West"),
    "Y63": Region("E40000012", "Y63", "North East and Yorkshire"),
}


def embedded_regions() -> dict[str, Region]:
    """ICB ODS code -> region, from the table above."""
    cells = _ICB24_REGION.split()
    return {icb: _REGIONS[region] for icb, region in zip(cells[::2], cells[1::2], strict=True)}


def region_map(records: Records) -> dict[str, Region]:
    """ICB code (ODS and/or ONS, whichever the file has) -> region. Sub-ICB rows repeat
    their ICB; a repeat must agree."""
    if not {"icb24_code", "icb24_ods_code"} & set(records.columns):
        raise SourceError(
            f"{records.path.name} is not a usable {records.source.label} file: it needs "
            "'ICB24CDH' or 'ICB24CD' beside the NHSER24 columns"
        )
    regions: dict[str, Region] = {}
    for line, r in records.rows:
        region = Region(r["nhser_code"], r["nhser_ods_code"], r["nhser_name"])
        if not all((region.code, region.ods_code, region.name)):
            raise records.fail(line, "region code, ODS code or name is empty")
        for key in (r.get("icb24_ods_code", ""), r.get("icb24_code", "")):
            if key and regions.setdefault(key, region) != region:
                raise records.fail(line, f"ICB {key} is in two regions")
    if not regions:
        raise SourceError(f"{records.path.name}: no data rows")
    return regions


@dataclass(frozen=True, slots=True)
class NhsGeography:
    """The three NHS lookups derived from the ONS LSOA->SICBL->ICB file plus regions."""

    lsoas: Table
    sicbls: Table
    icbs: Table


_LSOA_ICB_HEADER = (
    "lsoa21_code", "lsoa21_name", "sicbl24_code", "sicbl24_ods_code", "sicbl24_name",
    "icb24_code", "icb24_ods_code", "icb24_name", "nhser_code", "nhser_ods_code",
    "nhser_name", "lad24_code", "lad24_name",
)  # fmt: skip


def nhs_geography(records: Records, regions: Mapping[str, Region]) -> NhsGeography:
    rows: list[Row] = []
    sicbl_of: dict[str, tuple[str, ...]] = {}
    icb_of: dict[str, tuple[str, ...]] = {}
    no_region: set[str] = set()
    for line, r in records.rows:
        code = records.code(line, "lsoa21_code", r["lsoa21_code"], LSOA21_CODE)
        records.code(line, "icb24_code", r["icb24_code"], ICB_ONS_CODE)
        if not (r["icb24_ods_code"] and r["sicbl24_ods_code"]):
            raise records.fail(line, "ICB24CDH or SICBL24CDH is empty")
        region = regions.get(r["icb24_ods_code"]) or regions.get(r["icb24_code"])
        if region is None:
            no_region.add(f"{r['icb24_ods_code']} ({r['icb24_code']}, {r['icb24_name']})")
            continue
        icb = (r["icb24_code"], r["icb24_ods_code"], r["icb24_name"])
        icb_row = (*icb, region.code, region.ods_code, region.name)
        sicbl = (r["sicbl24_code"], r["sicbl24_ods_code"], r["sicbl24_name"], *icb_row)
        for key, seen, value, what in (
            (r["icb24_ods_code"], icb_of, icb_row, "ICB"),
            (r["sicbl24_code"], sicbl_of, sicbl, "sub-ICB location"),
        ):
            if seen.setdefault(key, value) != value:
                raise records.fail(line, f"{what} {key} appears with different codes or names")
        rows.append(
            (code, r["lsoa21_name"], *sicbl[:3], *icb_row, r["lad24_code"], r["lad24_name"])
        )
    if no_region:
        raise SourceError(
            f"no NHS England region for ICB {', '.join(sorted(no_region))}: pass --region-lookup "
            "with the ONS lookup to NHS England (Region) of the same vintage"
        )
    rows.sort(key=lambda row: row[0])
    where = f"{records.path.name} ({records.source.label})"
    if not rows:
        raise SourceError(f"{where}: no data rows")
    unique((row[0] for row in rows), f"{where}: lsoa21_code")
    per_sicbl = Counter(row[2] for row in rows)
    return NhsGeography(
        lsoas=Table(FILES["lsoa_icb"], _LSOA_ICB_HEADER, rows),
        sicbls=Table(
            "sicbl24_icb24_nhser_lookup_england.csv.gz",
            (*_LSOA_ICB_HEADER[2:11], "n_lsoa21"),
            sorted((*v, per_sicbl[k]) for k, v in sicbl_of.items()),
        ),
        icbs=Table(FILES["icbs"], _LSOA_ICB_HEADER[5:11], sorted(icb_of.values())),
    )


# The ODS ``etr`` layout (NHS trusts) has no header row: 27 positional fields.
_ETR_FIELDS = {
    "org_code": 0, "org_name": 1, "nhser_ods_code": 2, "icb_ods_code": 3,
    "address_line_1": 4, "address_line_2": 5, "address_line_3": 6, "address_line_4": 7,
    "address_line_5": 8, "postcode": 9, "open_date": 10, "close_date": 11,
    "telephone": 17, "amended_record_indicator": 21, "gor_code": 23,
}  # fmt: skip
TRUSTS_HEADER = (
    "org_code", "org_name", "icb_ods_code", "icb24_code", "icb24_name", "nhser_ods_code",
    "nhser_code", "nhser_name", "postcode", "address_line_1", "address_line_2",
    "address_line_3", "address_line_4", "address_line_5", "open_date", "close_date",
    "is_open", "telephone", "gor_code", "amended_record_indicator",
)  # fmt: skip


def trusts_table(rows: Iterable[list[str]], path: Path, icbs: Table) -> Table:
    """ODS ``etr.csv`` -> trusts with the ICB and region names joined on ODS codes.

    ``is_open`` is derived: the close date is empty. A trust whose ICB or region code is
    not in the April 2024 tables keeps its codes with empty names (Welsh trusts have none).
    """
    icb_names = {str(r[1]): (str(r[0]), str(r[2])) for r in icbs.rows}
    regions = {str(r[4]): (str(r[3]), str(r[5])) for r in icbs.rows}
    out: list[Row] = []
    for line, row in enumerate(rows, 1):
        if not any(row) or (line == 1 and normalise_header(row[0]) == "organisation code"):
            continue
        if len(row) <= max(_ETR_FIELDS.values()):
            raise SourceError(
                f"{path.name} row {line}: {len(row)} fields, but the ODS etr layout has 27; "
                "pass the etr.csv from the ODS 'NHS Trusts' download unchanged"
            )
        f = {name: row[index] for name, index in _ETR_FIELDS.items()}
        if not f["org_code"]:
            raise SourceError(f"{path.name} row {line}: the organisation code is empty")
        dates = [_ods_date(f[d], path, line) for d in ("open_date", "close_date")]
        icb = icb_names.get(f["icb_ods_code"], ("", ""))
        region = regions.get(f["nhser_ods_code"], ("", ""))
        out.append(
            (
                f["org_code"], f["org_name"], f["icb_ods_code"], *icb, f["nhser_ods_code"],
                *region, f["postcode"], *(f[f"address_line_{i}"] for i in range(1, 6)),
                *dates, str(not f["close_date"]), f["telephone"], f["gor_code"],
                f["amended_record_indicator"],
            )
        )  # fmt: skip
    if not out:
        raise SourceError(f"{path.name}: no trusts")
    out.sort(key=lambda row: str(row[0]))
    unique((row[0] for row in out), f"{path.name}: organisation code")
    return Table(FILES["trusts"], TRUSTS_HEADER, out)


def _ods_date(value: str, path: Path, line: int) -> str:
    """ODS dates are CCYYMMDD; the layout writes ISO dates."""
    if not value:
        return ""
    if not re.fullmatch(r"\d{8}", value):
        raise SourceError(f"{path.name} row {line}: date {value!r} is not CCYYMMDD")
    return f"{value[:4]}-{value[4:6]}-{value[6:]}"
