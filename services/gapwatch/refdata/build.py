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

This module is the orchestration; each step lives in its own module:

- ``sources``: each input's columns and the publisher headers they arrive under;
- ``readers``: opening CSV/zip/gz files and finding the header row;
- ``area_tables`` and ``nhs_tables``: one transform per output file;
- ``validate``: the checks within and between files;
- ``tables``: the ``Table`` value, the reproducible writer, the loader's columns.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from gapwatch.adapters.refdata_files import FILES
from gapwatch.core.errors import ConfigError
from gapwatch.refdata.area_tables import (
    POSTCODE_HEADER,
    PostcodeTally,
    ethnicity_table,
    iod_table,
    lsoa11_lsoa21_table,
    population_rows,
    population_table,
    postcode_rows,
)
from gapwatch.refdata.nhs_tables import (
    TRUSTS_HEADER,
    embedded_regions,
    nhs_geography,
    region_map,
    trusts_table,
)
from gapwatch.refdata.readers import open_positional, open_records
from gapwatch.refdata.sources import (
    ETHNICITY,
    ETR_ZIP_HINTS,
    ICB_LOOKUP,
    IOD,
    LSOA11_21,
    POPULATION,
    POSTCODES,
    REGION_LOOKUP,
    SourceError,
)
from gapwatch.refdata.tables import Table, write_table
from gapwatch.refdata.validate import cross_check

__all__ = ["BuildReport", "Inputs", "build"]

logger = logging.getLogger(__name__)


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
    cross_check(report, tables, inputs)
    _write(report, tables, inputs, out, nhs.lsoas)
    return report


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
            tally = PostcodeTally()
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
