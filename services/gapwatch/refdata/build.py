"""Turn the publishers' own downloads into the reference-data directory gapwatch loads.

The output has exactly the layout ``adapters.refdata_files`` reads (gzip CSVs, snake_case
headers, codes as published; ``PROVENANCE.md`` describes each file). Inputs are read as
the publishers ship them: a CSV, a CSV inside a ``.zip``, or a ``.gz``. Headers are matched
after normalisation (case, spaces and punctuation ignored) against a table of aliases per
input, so a renamed or truncated header still matches; a missing one is an error that
names the file and the column.

Nothing is written until every input has been read and validated. The files are then
written to a staging directory inside the output directory and moved into place, so a
failed build leaves the output directory as it was. Output is deterministic: rows are
sorted, gzip headers carry no timestamp or file name.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import logging
import math
import os
import re
import shutil
import tempfile
import zipfile
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from gapwatch.adapters.refdata_files import FILES
from gapwatch.core.errors import ConfigError
from gapwatch.core.refdata import normalise_postcode

__all__ = [
    "ETHNICITY",
    "ICB_LOOKUP",
    "IOD",
    "LOADER_COLUMNS",
    "LSOA11_21",
    "POPULATION",
    "POSTCODES",
    "REGION_LOOKUP",
    "BuildReport",
    "Column",
    "Inputs",
    "NhsGeography",
    "Records",
    "Region",
    "Source",
    "SourceError",
    "Table",
    "build",
    "embedded_regions",
    "ethnicity_table",
    "iod_table",
    "lsoa11_lsoa21_table",
    "nhs_geography",
    "normalise_header",
    "open_positional",
    "open_records",
    "population_rows",
    "population_table",
    "postcode_rows",
    "region_map",
    "trusts_table",
    "write_table",
]

logger = logging.getLogger(__name__)

Cell = str | int
Row = tuple[Cell, ...]


class SourceError(ConfigError):
    """An input file cannot be used. The message names the file and, where it applies,
    the column and row."""


def normalise_header(raw: str) -> str:
    """``"LSOA code (2021)"`` -> ``"lsoa code 2021"``: case, punctuation and spacing go.

    Nomis bulk files may end a header with ``"; measures: Value"``; that suffix goes too.
    """
    text = raw.replace("\ufeff", "").casefold().replace("&", " and ")
    text = re.sub(r"[^0-9a-z]+", " ", text).strip()
    return re.sub(r" measures value$", "", text)


@dataclass(frozen=True, slots=True)
class Column:
    """An output column and the publisher headers it may arrive under."""

    name: str
    aliases: tuple[str, ...] = ()
    required: bool = True

    def keys(self) -> tuple[str, ...]:
        """Normalised names to look for, in order of preference."""
        return tuple(dict.fromkeys(normalise_header(a) for a in (self.name, *self.aliases)))


@dataclass(frozen=True, slots=True)
class Source:
    label: str
    columns: tuple[Column, ...]
    zip_hints: tuple[str, ...] = ()
    """Regexes that pick the right CSV out of a zip holding several."""
    wrong_edition: tuple[tuple[str, str], ...] = ()
    """(header, explanation): a header that means the user downloaded another edition."""


_MIN_TRUNCATED = 30
"""A normalised header at least this long may be a cut-off alias: the published IoD2025
File 7 CSV ends one header at "...most deprived 10% of LSO". Shorter headers must match
exactly, so "Income Score" never stands in for an IDACI column."""

_MAX_PREAMBLE = 20
"""Rows searched for the header: ONS workbooks exported to CSV keep their title rows."""


def _match(
    header: Sequence[str], source: Source, path: Path
) -> tuple[dict[str, int], list[Column]]:
    normalised = [normalise_header(h) for h in header]
    found: dict[str, int] = {}
    missing: list[Column] = []
    for column in source.columns:
        hits: list[int] = []
        for key in column.keys():
            hits = [i for i, h in enumerate(normalised) if h == key]
            if hits:
                break
        else:
            for key in column.keys():
                hits = [
                    i
                    for i, h in enumerate(normalised)
                    if len(h) >= _MIN_TRUNCATED and key.startswith(h)
                ]
                if hits:
                    break
        if len(hits) > 1:
            names = ", ".join(repr(header[i]) for i in hits)
            raise SourceError(f"{path.name}: column {column.name!r} is ambiguous: {names}")
        if hits:
            found[column.name] = hits[0]
        elif column.required:
            missing.append(column)
    for index, count in Counter(found.values()).items():
        if count > 1:
            raise SourceError(f"{path.name}: header {header[index]!r} matches several columns")
    return found, missing


def _missing_message(
    header: Sequence[str], line: int, source: Source, path: Path, missing: Sequence[Column]
) -> str:
    wanted = "; ".join(
        f"{c.name!r} (publisher header {c.aliases[0]!r})" if c.aliases else repr(c.name)
        for c in missing
    )
    shown = ", ".join(repr(h) for h in header[:12]) + (", ..." if len(header) > 12 else "")
    plural = "s" if len(missing) > 1 else ""
    message = (
        f"{path.name} is not a usable {source.label} file: missing required column{plural} "
        f"{wanted}. Closest header row (row {line}): {shown}"
    )
    present = {normalise_header(h) for h in header}
    for hint, explanation in source.wrong_edition:
        if normalise_header(hint) in present:
            message += f". {explanation}"
    return message


@dataclass(slots=True)
class Records:
    """The data rows of one input, keyed by output column name, with where they came from."""

    path: Path
    source: Source
    columns: tuple[str, ...]
    rows: Iterable[tuple[int, dict[str, str]]]

    def fail(self, row: int, message: str) -> SourceError:
        return SourceError(f"{self.path.name} row {row}: {message}")

    def integer(self, row: int, column: str, value: str) -> int:
        try:
            number = float(value.replace(",", ""))
        except ValueError:
            raise self.fail(row, f"{column} is {value!r}, not a number") from None
        if not number.is_integer():
            raise self.fail(row, f"{column} is {value!r}, not a whole number")
        return int(number)

    def number(self, row: int, column: str, value: str) -> str:
        """Check a decimal and return it as published (no re-rounding)."""
        try:
            number = float(value)
        except ValueError:
            raise self.fail(row, f"{column} is {value!r}, not a number") from None
        if not math.isfinite(number):
            raise self.fail(row, f"{column} is {value!r}")
        return value

    def code(self, row: int, column: str, value: str, pattern: re.Pattern[str]) -> str:
        if not pattern.fullmatch(value):
            raise self.fail(row, f"{column} is {value!r}, expected a code like {pattern.pattern}")
        return value


def _cp1252_fallback(error: UnicodeError) -> tuple[str, int]:
    """Decode bytes that are not UTF-8 as Windows-1252, which Excel's plain "CSV" uses."""
    if not isinstance(error, UnicodeDecodeError):
        raise error
    return error.object[error.start : error.end].decode("cp1252", "replace"), error.end


@contextmanager
def _open_text(path: Path, zip_hints: Sequence[str]) -> Iterator[IO[str]]:
    if not path.is_file():
        raise SourceError(f"input file not found: {path}")
    codecs.register_error("gapwatch-cp1252", _cp1252_fallback)
    encoding, errors = "utf-8-sig", "gapwatch-cp1252"
    with ExitStack() as stack:
        text: IO[str]
        if zipfile.is_zipfile(path):
            archive = stack.enter_context(zipfile.ZipFile(path))
            member = stack.enter_context(archive.open(_pick_member(archive, path, zip_hints)))
            text = io.TextIOWrapper(member, encoding=encoding, errors=errors, newline="")
        elif _is_gzip(path):
            text = gzip.open(path, "rt", encoding=encoding, errors=errors, newline="")
        else:
            text = path.open("r", encoding=encoding, errors=errors, newline="")
        yield stack.enter_context(text)


def _is_gzip(path: Path) -> bool:
    with path.open("rb") as handle:
        return handle.read(2) == b"\x1f\x8b"


def _pick_member(archive: zipfile.ZipFile, path: Path, hints: Sequence[str]) -> str:
    members = archive.namelist()
    if "[Content_Types].xml" in members:
        raise SourceError(f"{path.name} is an Excel workbook: save the sheet as CSV and pass that")
    names = [n for n in members if n.lower().endswith(".csv")]
    if len(names) == 1:
        return names[0]
    for hint in hints:
        hits = [n for n in names if re.search(hint, n, re.IGNORECASE)]
        if len(hits) == 1:
            return hits[0]
    listed = ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")
    raise SourceError(
        f"{path.name} holds {len(names)} CSV files ({listed or 'none'}): "
        "unzip it and pass the one this input needs"
    )


@contextmanager
def open_records(path: Path, source: Source) -> Iterator[Records]:
    """Find the header row (after any title rows), match it, and stream the data rows."""
    with _open_text(path, source.zip_hints) as text:
        reader = csv.reader(text)
        best: tuple[list[str], int, list[Column]] | None = None
        for line, row in enumerate(reader, 1):
            if not any(cell.strip() for cell in row):
                continue
            found, missing = _match(row, source, path)
            if not missing:
                yield Records(path, source, _ordered(found, source), _data(reader, found, line))
                return
            if best is None or len(missing) < len(best[2]):
                best = (row, line, missing)
            if line >= _MAX_PREAMBLE:
                break
        if best is None:
            raise SourceError(f"{path.name} is empty: expected a {source.label} file")
        raise SourceError(_missing_message(*best[:2], source, path, best[2]))


def _ordered(found: Mapping[str, int], source: Source) -> tuple[str, ...]:
    return tuple(c.name for c in source.columns if c.name in found)


def _data(
    reader: Iterator[list[str]], found: Mapping[str, int], header_line: int
) -> Iterator[tuple[int, dict[str, str]]]:
    for line, row in enumerate(reader, header_line + 1):
        if any(cell.strip() for cell in row):
            yield line, {n: row[i].strip() if i < len(row) else "" for n, i in found.items()}


@contextmanager
def open_positional(path: Path, zip_hints: Sequence[str]) -> Iterator[Iterator[list[str]]]:
    """Rows of a header-less file (the ODS extracts), cells stripped."""
    with _open_text(path, zip_hints) as text:
        yield ([cell.strip() for cell in row] for row in csv.reader(text))


_LSOA21 = re.compile(r"E01\d{6}")
_LSOA_EW = re.compile(r"[EW]01\d{6}")
_ICB_ONS = re.compile(r"E54\d{6}")

_IOD_DOMAINS = (
    ("imd", ("Index of Multiple Deprivation (IMD)", "Index of Multiple Deprivation", "IMD")),
    ("income", ("Income",)),
    ("employment", ("Employment",)),
    ("education_skills_training", ("Education, Skills and Training",)),
    ("health_deprivation_disability", ("Health Deprivation and Disability",)),
    ("crime", ("Crime",)),
    ("barriers_housing_services", ("Barriers to Housing and Services",)),
    ("living_environment", ("Living Environment",)),
    ("sub_children_young_people", ("Children and Young People Sub-domain",)),
    ("sub_adult_skills", ("Adult Skills Sub-domain",)),
    ("sub_geographical_barriers", ("Geographical Barriers Sub-domain",)),
    ("sub_wider_barriers", ("Wider Barriers Sub-domain",)),
    ("sub_indoors", ("Indoors Sub-domain",)),
    ("sub_outdoors", ("Outdoors Sub-domain",)),
)
_IOD_MEASURES = (
    ("score", ("Score", "Score (rate)")),
    ("rank", ("Rank (where 1 is most deprived)", "Rank")),
    ("decile", ("Decile (where 1 is most deprived 10% of LSOAs)", "Decile")),
)

IOD = Source(
    label="IoD2025 File 7 (all ranks, scores, deciles)",
    columns=(
        Column("lsoa21_code", ("LSOA code (2021)", "LSOA21CD")),
        Column("lsoa21_name", ("LSOA name (2021)", "LSOA21NM")),
        Column("lad24_code", ("Local Authority District code (2024)", "LAD24CD")),
        Column("lad24_name", ("Local Authority District name (2024)", "LAD24NM")),
        *(
            Column(
                f"{domain}_{measure}",
                tuple(f"{label} {suffix}" for label in labels for suffix in suffixes),
                required=domain == "imd",
            )
            for domain, labels in _IOD_DOMAINS
            for measure, suffixes in _IOD_MEASURES
        ),
    ),
    zip_hints=(r"file_?7",),
    wrong_edition=(
        (
            "LSOA code (2011)",
            "This is an IoD2019 file (LSOA 2011); gapwatch needs IoD2025 File 7 (LSOA 2021)",
        ),
    ),
)

ICB_LOOKUP = Source(
    label="ONS LSOA (2021) to SICBL to ICB to Cancer Alliances to LAD (April 2024) lookup",
    columns=(
        Column("lsoa21_code", ("LSOA21CD",)),
        Column("lsoa21_name", ("LSOA21NM",)),
        Column("sicbl24_code", ("SICBL24CD",)),
        Column("sicbl24_ods_code", ("SICBL24CDH",)),
        Column("sicbl24_name", ("SICBL24NM",)),
        Column("icb24_code", ("ICB24CD",)),
        Column("icb24_ods_code", ("ICB24CDH",)),
        Column("icb24_name", ("ICB24NM",)),
        Column("lad24_code", ("LAD24CD",)),
        Column("lad24_name", ("LAD24NM",)),
    ),
    wrong_edition=tuple(
        (f"SICBL{year}CD", f"This is the {year} lookup; gapwatch's layout is April 2024 (SICBL24)")
        for year in ("22", "23", "25", "26")
    ),
)

REGION_LOOKUP = Source(
    label="ONS Sub ICB Location / ICB to NHS England (Region) (April 2024) lookup",
    columns=(
        Column("icb24_code", ("ICB24CD",), required=False),
        Column("icb24_ods_code", ("ICB24CDH",), required=False),
        Column("nhser_code", ("NHSER24CD",)),
        Column("nhser_ods_code", ("NHSER24CDH",)),
        Column("nhser_name", ("NHSER24NM",)),
    ),
)

LSOA11_21 = Source(
    label="ONS LSOA (2011) to LSOA (2021) to LAD (2022) lookup",
    columns=(
        Column("lsoa11_code", ("LSOA11CD", "F_LSOA11CD")),
        Column("lsoa11_name", ("LSOA11NM",)),
        Column("lsoa21_code", ("LSOA21CD",)),
        Column("lsoa21_name", ("LSOA21NM",)),
        Column("change_code", ("CHGIND",)),
        Column("lad22_code", ("LAD22CD",)),
        Column("lad22_name", ("LAD22NM",)),
    ),
)

_AGES = tuple(f"age_{a}" for a in range(90)) + ("age_90_plus",)

POPULATION = Source(
    label="ONS mid-2019 LSOA population by single year of age (SAPE22DT2 sheet)",
    columns=(
        Column("lsoa11_code", ("LSOA Code", "LSOA11CD")),
        Column("lsoa11_name", ("LSOA Name", "LSOA11NM")),
        Column("lad19_code", ("LA Code (2019 boundaries)", "LAD19CD")),
        Column("lad19_name", ("LA name (2019 boundaries)", "LAD19NM")),
        Column("all_ages", ("All Ages",), required=False),
        *(Column(f"age_{a}", (str(a),)) for a in range(90)),
        Column("age_90_plus", ("90+", "90 plus")),
    ),
    wrong_edition=(
        (
            "LA Code (2021 boundaries)",
            "This looks like the mid-2020 release; gapwatch expects mid-2019 (SAPE22DT2)",
        ),
    ),
)

_ETHNIC_GROUPS = (
    ("asian", "Asian, Asian British or Asian Welsh"),
    ("black", "Black, Black British, Black Welsh, Caribbean or African"),
    ("mixed", "Mixed or Multiple ethnic groups"),
    ("white", "White"),
    ("other", "Other ethnic group"),
)

ETHNICITY = Source(
    label="Census 2021 TS021 ethnic group, LSOA (Nomis bulk file census2021-ts021-lsoa.csv)",
    columns=(
        Column("lsoa21_code", ("geography code", "LSOA21CD")),
        Column("usual_residents_total", ("Ethnic group: Total: All usual residents",)),
        *(Column(f"ethnic_group_{k}", (f"Ethnic group: {label}",)) for k, label in _ETHNIC_GROUPS),
    ),
    zip_hints=(r"-lsoa\.csv$",),
)

POSTCODES = Source(
    label="ONS Postcode Directory (ONSPD) or National Statistics Postcode Lookup",
    columns=(
        Column("postcode", ("pcds", "pcd", "pcd2", "pcd7", "pcd8", "postcode")),
        Column("lsoa21_code", ("lsoa21cd", "lsoa21")),
        Column("msoa21_code", ("msoa21cd", "msoa21"), required=False),
        Column("ward24_code", ("wd24cd",), required=False),
        Column("lat", ("lat", "latitude"), required=False),
        Column("lon", ("long", "lon", "longitude"), required=False),
    ),
    zip_hints=(r"(^|/)data/[^/]*_uk\.csv$", r"_uk\.csv$"),
)

ETR_ZIP_HINTS = (r"(^|/)etr\.csv$",)


@dataclass(frozen=True, slots=True)
class Table:
    filename: str
    header: tuple[str, ...]
    rows: list[Row]

    def column(self, name: str) -> list[Cell]:
        index = self.header.index(name)
        return [row[index] for row in self.rows]


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
        out: list[Cell] = [records.code(line, "lsoa21_code", r["lsoa21_code"], _LSOA21)]
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
    _check_iod(table, records)
    return table


_IDENTITY = ("lsoa21_code", "lsoa21_name", "lad24_code", "lad24_name")


def _check_iod(table: Table, records: Records) -> None:
    """The IMD rank is 1..N without ties; every rank lies in 1..N (domain ranks may tie:
    equal scores share a rank); every decile is ceil(10 * rank / N), as on every row of
    the published IoD2025; the IMD score falls as the rank rises. A failure means a
    column was mapped wrongly or the file was edited."""
    where = f"{records.path.name} ({records.source.label})"
    n = len(table.rows)
    if n == 0:
        raise SourceError(f"{where}: no data rows")
    _unique(table.column("lsoa21_code"), f"{where}: lsoa21_code")
    imd_ranks = sorted(int(v) for v in table.column("imd_rank"))
    if imd_ranks != list(range(1, n + 1)):
        tied = [r for r, k in Counter(imd_ranks).items() if k > 1][:3]
        raise SourceError(
            f"{where}: imd_rank is not 1..{n} without gaps or ties (e.g. {tied or 'gaps'})"
        )
    codes = table.column("lsoa21_code")
    for name in (h for h in table.header if h.endswith("_rank")):
        ranks = [int(v) for v in table.column(name)]
        if not 1 <= min(ranks) <= max(ranks) <= n:
            raise SourceError(f"{where}: {name} runs {min(ranks)}..{max(ranks)}, not 1..{n}")
        decile = name.removesuffix("_rank") + "_decile"
        if decile not in table.header:
            continue
        for code, rank, value in zip(codes, ranks, table.column(decile), strict=True):
            if value != math.ceil(10 * rank / n):
                raise SourceError(
                    f"{where}: {code} has {name} {rank} but {decile} {value} "
                    f"(expected {math.ceil(10 * rank / n)} of {n} areas)"
                )
    by_rank = sorted(zip(table.column("imd_rank"), table.column("imd_score"), strict=True))
    for (rank_a, score_a), (rank_b, score_b) in zip(by_rank, by_rank[1:], strict=False):
        if float(score_a) < float(score_b):
            raise SourceError(
                f"{where}: imd_score rises from {score_a} (rank {rank_a}) to {score_b} "
                f"(rank {rank_b}); rank 1 must have the highest score"
            )


def _unique(values: Iterable[Cell], what: str) -> None:
    repeated = [v for v, k in Counter(values).items() if k > 1]
    if repeated:
        raise SourceError(f"{what} repeats: {', '.join(map(str, repeated[:5]))}")


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
        code = records.code(line, "lsoa21_code", r["lsoa21_code"], _LSOA21)
        records.code(line, "icb24_code", r["icb24_code"], _ICB_ONS)
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
    _unique((row[0] for row in rows), f"{where}: lsoa21_code")
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


def lsoa11_lsoa21_table(records: Records) -> Table:
    """ONS LSOA11->LSOA21 lookup. ArcGIS exports can repeat a row; exact repeats are
    dropped, a pair that repeats with different details is an error."""
    pairs: dict[tuple[str, str], Row] = {}
    for line, r in records.rows:
        old = records.code(line, "lsoa11_code", r["lsoa11_code"], _LSOA_EW)
        new = records.code(line, "lsoa21_code", r["lsoa21_code"], _LSOA_EW)
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


LSOA11_21_HEADER = tuple(c.name for c in LSOA11_21.columns)


def population_rows(records: Records, sex: str) -> dict[str, Row]:
    """One SAPE22DT2 sheet -> LSOA11 code -> output row for ``sex`` ("F" or "M").

    ``all_ages`` is the sum of the age columns; where the sheet has "All Ages" it must agree.
    """
    rows: dict[str, Row] = {}
    for line, r in records.rows:
        code = records.code(line, "lsoa11_code", r["lsoa11_code"], _LSOA_EW)
        ages = [records.integer(line, name, r[name]) for name in _AGES]
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
    "lsoa11_code", "lsoa11_name", "lad19_code", "lad19_name", "sex", "all_ages", *_AGES,
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
        code = records.code(line, "lsoa21_code", r["lsoa21_code"], _LSOA_EW)
        total = records.integer(line, "usual_residents_total", r["usual_residents_total"])
        groups = [records.integer(line, n, r[n]) for n in records.columns[2:]]
        if sum(groups) != total:
            raise records.fail(line, f"the five groups add up to {sum(groups)}, not {total}")
        rows.append((code, total, *groups))
    if not rows:
        raise SourceError(f"{records.path.name}: no data rows")
    rows.sort(key=lambda row: str(row[0]))
    _unique((row[0] for row in rows), f"{records.path.name}: lsoa21_code")
    return Table(FILES["ethnicity"], tuple(c.name for c in ETHNICITY.columns), rows)


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
    _unique((row[0] for row in out), f"{path.name}: organisation code")
    return Table(FILES["trusts"], TRUSTS_HEADER, out)


def _ods_date(value: str, path: Path, line: int) -> str:
    """ODS dates are CCYYMMDD; the layout writes ISO dates."""
    if not value:
        return ""
    if not re.fullmatch(r"\d{8}", value):
        raise SourceError(f"{path.name} row {line}: date {value!r} is not CCYYMMDD")
    return f"{value[:4]}-{value[4:6]}-{value[6:]}"


POSTCODE_HEADER = (
    "postcode", "lsoa21_code", "lsoa21_name", "msoa21_code", "msoa21_hcl_name", "ward24_code",
    "ward24_name", "lad24_code", "lad24_name", "locality", "lon", "lat",
)  # fmt: skip


@dataclass(slots=True)
class _Tally:
    kept: int = 0
    skipped: int = 0


def postcode_rows(records: Records, lsoas: Table, tally: _Tally) -> Iterator[Row]:
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


def write_table(path: Path, header: Sequence[str], rows: Iterable[Sequence[Cell]]) -> int:
    """Write a gzip CSV byte-for-byte reproducibly (no gzip timestamp or name); -> rows."""
    count = 0
    with (
        path.open("wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as packed,
        io.TextIOWrapper(packed, encoding="utf-8", newline="") as text,
    ):
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(header)
        for row in rows:
            writer.writerow(row)
            count += 1
    return count


# What adapters.refdata_files reads from each file; `refdata check` requires these.
LOADER_COLUMNS: dict[str, tuple[str, ...]] = {
    "imd": ("lsoa21_code", "imd_rank", "imd_decile", "imd_quintile"),
    "lsoa_icb": ("lsoa21_code", "icb24_ods_code"),
    "icbs": ("icb24_ods_code", "icb24_code", "icb24_name", "nhser_ods_code", "nhser_name"),
    "lsoa11_21": ("lsoa11_code", "lsoa21_code"),
    "postcodes": ("postcode", "lsoa21_code"),
    "trusts": ("org_code", "org_name", "icb_ods_code"),
    "catchment": ("nhs_trust22_code", "icb22_ods_code", "proportion_trust_came_from_icb"),
    "population": ("lsoa11_code", "sex", *_AGES),
    "ethnicity": ("lsoa21_code", *(f"ethnic_group_{k}" for k, _ in _ETHNIC_GROUPS)),
}


@dataclass(frozen=True, slots=True)
class Inputs:
    """The publishers' files, as downloaded. Optional ones may be None."""

    iod: Path
    icb_lookup: Path
    lsoa11_lsoa21: Path
    population_male: Path
    population_female: Path
    region_lookup: Path | None = None
    ethnicity: Path | None = None
    trusts: Path | None = None
    postcodes: Path | None = None


@dataclass(slots=True)
class BuildReport:
    out: Path
    written: dict[str, int] = field(default_factory=dict)
    """File name -> data rows."""
    lsoas: int = 0
    icbs: int = 0
    regions: int = 0
    region_source: str = ""
    population_england: int = 0
    population_england_wales: int = 0
    trusts_open: int = 0
    postcodes_outside: int = 0
    """Postcodes left out: their LSOA is not in the ICB lookup (Wales, Scotland, NI)."""
    warnings: list[str] = field(default_factory=list)

    def warn(self, message: str) -> None:
        logger.warning("refdata build: %s", message)
        self.warnings.append(message)


def _targets(inputs: Inputs) -> list[str]:
    names = [
        FILES["imd"], FILES["lsoa_icb"], "sicbl24_icb24_nhser_lookup_england.csv.gz",
        FILES["icbs"], FILES["lsoa11_21"], FILES["population"],
    ]  # fmt: skip
    optional = (("ethnicity", inputs.ethnicity), ("trusts", inputs.trusts))
    names += [FILES[key] for key, given in (*optional, ("postcodes", inputs.postcodes)) if given]
    return names


def build(inputs: Inputs, out: Path, *, force: bool = False) -> BuildReport:
    """Read and validate every input, then write the directory ``out``.

    Existing output files are replaced only with ``force``. Optional inputs that are not
    given leave their files as they are, except the trusts file, which the loader needs:
    if it is missing an empty one (header only) is written and a warning says so.
    """
    existing = [n for n in _targets(inputs) if (out / n).exists()]
    if existing and not force:
        raise ConfigError(
            f"{out} already holds {', '.join(existing)}: pass --force to replace them"
        )
    report = BuildReport(out)
    if inputs.region_lookup is None:
        regions = embedded_regions()
        report.region_source = "embedded April 2024 ICB -> region table"
    else:
        with open_records(inputs.region_lookup, REGION_LOOKUP) as records:
            regions = region_map(records)
        report.region_source = inputs.region_lookup.name
    with open_records(inputs.iod, IOD) as records:
        iod = iod_table(records)
    with open_records(inputs.icb_lookup, ICB_LOOKUP) as records:
        nhs = nhs_geography(records, regions)
    with open_records(inputs.lsoa11_lsoa21, LSOA11_21) as records:
        lsoa11_21 = lsoa11_lsoa21_table(records)
    with open_records(inputs.population_female, POPULATION) as records:
        female = population_rows(records, "F")
    with open_records(inputs.population_male, POPULATION) as records:
        male = population_rows(records, "M")
    population = population_table(female, male, inputs.population_female, inputs.population_male)
    tables = [iod, nhs.lsoas, nhs.sicbls, nhs.icbs, lsoa11_21, population]
    if inputs.ethnicity is not None:
        with open_records(inputs.ethnicity, ETHNICITY) as records:
            tables.append(ethnicity_table(records))
    if inputs.trusts is not None:
        with open_positional(inputs.trusts, ETR_ZIP_HINTS) as rows:
            tables.append(trusts_table(rows, inputs.trusts, nhs.icbs))
    elif not (out / FILES["trusts"]).exists():
        tables.append(Table(FILES["trusts"], TRUSTS_HEADER, []))
        report.warn("no --trusts given: wrote an empty trusts file, so no trust is known")
    _cross_check(report, tables, inputs)
    _write(report, tables, inputs, out, nhs.lsoas)
    return report


def _cross_check(report: BuildReport, tables: Sequence[Table], inputs: Inputs) -> None:
    """Checks between files. Every IoD LSOA needs an ICB (the loader drops those without);
    the rest only warn, because the loader copes."""
    by_name = {t.filename: t for t in tables}
    iod_codes = set(map(str, by_name[FILES["imd"]].column("lsoa21_code")))
    lookup = by_name[FILES["lsoa_icb"]]
    icb_codes = set(map(str, lookup.column("lsoa21_code")))
    if missing := sorted(iod_codes - icb_codes):
        raise SourceError(
            f"{len(missing)} LSOAs of {inputs.iod.name} are not in {inputs.icb_lookup.name} "
            f"(e.g. {', '.join(missing[:5])}): are both for LSOA 2021 and all of England?"
        )
    if extra := icb_codes - iod_codes:
        report.warn(f"{len(extra)} LSOAs of the ICB lookup have no IoD2025 row")
    pairs = by_name[FILES["lsoa11_21"]]
    if unlinked := iod_codes - set(map(str, pairs.column("lsoa21_code"))):
        report.warn(f"{len(unlinked)} IoD2025 LSOAs are not in the LSOA 2011->2021 lookup")
    population = by_name[FILES["population"]]
    english = {str(c) for c in population.column("lsoa11_code") if str(c).startswith("E")}
    if unmapped := english - set(map(str, pairs.column("lsoa11_code"))):
        report.warn(
            f"{len(unmapped)} English LSOA 2011 codes of the population file are not in the "
            "2011->2021 lookup; the loader will use them as 2021 codes"
        )
    report.population_england_wales = sum(int(v) for v in population.column("all_ages"))
    report.population_england = sum(
        int(row[5]) for row in population.rows if str(row[0]).startswith("E")
    )
    if ethnic := by_name.get(FILES["ethnicity"]):
        if uncovered := iod_codes - set(map(str, ethnic.column("lsoa21_code"))):
            report.warn(f"{len(uncovered)} IoD2025 LSOAs have no Census 2021 ethnic-group row")
    if (trusts := by_name.get(FILES["trusts"])) and trusts.rows:
        known = set(map(str, by_name[FILES["icbs"]].column("icb24_ods_code")))
        odd = {str(r[2]) for r in trusts.rows if r[2] and r[2] not in known}
        if odd:
            report.warn(f"trusts name ICBs not in the April 2024 table: {', '.join(sorted(odd))}")
        report.trusts_open = sum(1 for r in trusts.rows if r[16] == "True")
    icbs = by_name[FILES["icbs"]]
    report.lsoas = len(iod_codes)
    report.icbs = len(icbs.rows)
    report.regions = len(set(icbs.column("nhser_ods_code")))


def _write(
    report: BuildReport, tables: Sequence[Table], inputs: Inputs, out: Path, lsoas: Table
) -> None:
    out.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".refdata-build-", dir=out))
    try:
        for table in tables:
            report.written[table.filename] = write_table(
                staging / table.filename, table.header, table.rows
            )
        if inputs.postcodes is not None:
            tally = _Tally()
            with open_records(inputs.postcodes, POSTCODES) as records:
                name = FILES["postcodes"]
                rows = postcode_rows(records, lsoas, tally)
                report.written[name] = write_table(staging / name, POSTCODE_HEADER, rows)
            report.postcodes_outside = tally.skipped
            if not tally.kept:
                raise SourceError(f"{inputs.postcodes.name}: no postcode in an English LSOA 2021")
        for name in report.written:
            os.replace(staging / name, out / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
