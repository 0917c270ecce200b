"""``gapwatch refdata build`` and ``gapwatch refdata check``.

``build`` turns the publishers' own downloads into the reference-data directory (see
docs/refdata.md for what to download); ``check`` loads a directory exactly as the
services do and prints what it holds. Both exit non-zero with a message naming the
file (and column) at fault.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import logging
import sys
import zlib
from pathlib import Path
from typing import Any

from gapwatch.adapters.refdata_files import FILES, OPTIONAL, load_reference_data
from gapwatch.core.errors import ConfigError
from gapwatch.refdata.build import BuildReport, Inputs, build
from gapwatch.refdata.tables import LOADER_COLUMNS
from gapwatch.settings import Settings

__all__ = ["check_directory", "register"]

logger = logging.getLogger(__name__)

_UNSUPPORTED = """\
not supported yet:
  --catchment  OHID "NHS Acute (Hospital) Trust Catchment Populations" is published by
               MSOA 2011; turning it into trust -> ICB shares needs an MSOA -> ICB
               lookup and a rule for MSOAs split between ICBs. The file is optional:
               without it a trust's home ICB is its ODS ICB.
not built (gapwatch does not read them): IoD2019, IoD2025 File 13 ICB summaries,
  the July 2022 LSOA 2011 -> ICB lookup.
See docs/refdata.md for where to download each input."""


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "refdata",
        help="build or check the reference-data directory",
        description="Build the reference-data directory from the publishers' downloads, "
        "or check one. The directory is GAPWATCH_REFDATA_DIR unless a flag says otherwise.",
    )
    actions = parser.add_subparsers(dest="refdata_action", required=True, metavar="ACTION")
    _register_build(actions)
    check = actions.add_parser(
        "check",
        help="load a reference-data directory and print what it holds",
        description="Load the directory as the services do and print counts: LSOAs, ICBs, "
        "trusts, postcodes and the England population. Exits 1 if a file is missing or "
        "malformed.",
    )
    check.add_argument(
        "--dir",
        type=Path,
        metavar="DIR",
        help="directory to check (default: env GAPWATCH_REFDATA_DIR, else settings default)",
    )
    check.set_defaults(func=_run_check)


_INPUT_FLAGS = (
    ("--iod", True,
     "MHCLG English Indices of Deprivation 2025, File 7 (all ranks, scores, deciles)"),
    ("--icb-lookup", True,
     "ONS LSOA (2021) to SICBL to ICB to Cancer Alliances to LAD (April 2024) lookup"),
    ("--lsoa11-lsoa21", True,
     "ONS LSOA (2011) to LSOA (2021) to LAD (2022) lookup for England and Wales"),
    ("--population-male", True,
     "ONS SAPE22DT2 mid-2019 LSOA single-year-of-age, sheet 'Mid-2019 Males' as CSV"),
    ("--population-female", True, "the same workbook's sheet 'Mid-2019 Females' as CSV"),
    ("--region-lookup", False,
     "ONS lookup from Sub ICB Locations/ICBs (April 2024) to NHS England (Region); without "
     "it the April 2024 ICB -> region table built into gapwatch is used"),
    ("--ethnicity", False,
     "Census 2021 TS021 Nomis bulk file (census2021-ts021.zip or its -lsoa.csv)"),
    ("--trusts", False, "NHS ODS 'NHS Trusts' extract etr.csv (or etr.zip)"),
    ("--postcodes", False, "ONS Postcode Directory (ONSPD) or NSPL CSV (or its zip)"),
    ("--catchment", False, "not supported yet (see below)"),
)  # fmt: skip


def _register_build(actions: Any) -> None:
    build_parser: argparse.ArgumentParser = actions.add_parser(
        "build",
        help="build the directory from the publishers' downloads",
        description="Read the publishers' files (CSV, CSV in a .zip, or .gz), validate them,\n"
        "and write the gzip CSVs gapwatch loads. Nothing is written unless every input\n"
        "is valid; then `refdata check` runs on the result.",
        epilog=_UNSUPPORTED,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    for name, required, text in _INPUT_FLAGS:
        build_parser.add_argument(name, type=Path, required=required, metavar="PATH", help=text)
    build_parser.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help="output directory (default: env GAPWATCH_REFDATA_DIR, else settings default)",
    )
    build_parser.add_argument(
        "--force", action="store_true", help="replace files already in the output directory"
    )
    build_parser.set_defaults(func=_run_build)


def _run_build(args: argparse.Namespace, settings: Settings) -> int:
    if args.catchment is not None:
        logger.error("refdata build: --catchment is not supported yet; leave it out")
        sys.stderr.write(_UNSUPPORTED + "\n")
        return 2
    out: Path = args.out or settings.refdata.dir
    inputs = Inputs(
        iod=args.iod,
        icb_lookup=args.icb_lookup,
        lsoa11_lsoa21=args.lsoa11_lsoa21,
        population_male=args.population_male,
        population_female=args.population_female,
        region_lookup=args.region_lookup,
        ethnicity=args.ethnicity,
        trusts=args.trusts,
        postcodes=args.postcodes,
    )
    try:
        report = build(inputs, out, force=args.force)
    except ConfigError as exc:
        logger.error("refdata build failed: %s", exc)
        return 2
    except OSError as exc:
        logger.error("refdata build failed: cannot write %s: %s", out, exc)
        return 2
    sys.stdout.write(_build_summary(report))
    return _run_check_of(out)


def _build_summary(report: BuildReport) -> str:
    lines = [f"built {report.out}"]
    lines += [f"  {name}: {rows:,} rows" for name, rows in report.written.items()]
    lines += [
        f"  LSOAs (2021) with IMD and ICB: {report.lsoas:,}",
        f"  ICBs: {report.icbs} in {report.regions} regions ({report.region_source})",
        f"  population mid-2019, England: {report.population_england:,}"
        f" (England and Wales: {report.population_england_wales:,})",
    ]
    if report.trusts_open:
        lines.append(f"  open trusts: {report.trusts_open}")
    if report.postcodes_outside:
        lines.append(f"  postcodes left out (LSOA outside England): {report.postcodes_outside:,}")
    lines += [f"  warning: {w}" for w in report.warnings]
    return "\n".join(lines) + "\n"


def _run_check(args: argparse.Namespace, settings: Settings) -> int:
    return _run_check_of(args.dir or settings.refdata.dir)


def _run_check_of(directory: Path) -> int:
    try:
        lines = check_directory(directory)
    except ConfigError as exc:
        logger.error("refdata check failed: %s", exc)
        return 1
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


def check_directory(directory: Path) -> list[str]:
    """Load ``directory`` as the services do; -> report lines. Raises ConfigError naming
    the missing files, or the file and column at fault."""
    if not directory.is_dir():
        raise ConfigError(f"{directory} is not a directory")
    missing = [name for key, name in FILES.items() if key not in OPTIONAL]
    missing = [name for name in missing if not (directory / name).is_file()]
    if missing:
        raise ConfigError(
            f"{directory} lacks {', '.join(missing)}: build it with `gapwatch refdata build`"
        )
    for key, name in FILES.items():
        if (directory / name).is_file():
            _check_header(directory / name, LOADER_COLUMNS[key])
    try:
        data = load_reference_data(directory)
    except (KeyError, ValueError, IndexError, OSError, EOFError, csv.Error, zlib.error) as exc:
        raise ConfigError(f"reference data in {directory} is malformed: {exc!r}") from exc
    areas = len(data.areas) - len(data.lsoa11_changed)
    with_icb = sum(1 for t in data.trusts.values() if t.home_icb)
    england = sum(sum(cells.values()) for cells in data.population.cells.values())
    ethnic = sum(sum(groups.values()) for groups in data.population.ethnic.values())
    regions = len({icb.region_ods_code for icb in data.icbs.values()})
    absent = [n for k, n in FILES.items() if k in OPTIONAL and not (directory / n).is_file()]
    lines = [
        f"reference data in {directory} ({data.imd_edition}; {data.geography})",
        f"  LSOAs (2021): {areas:,}",
        f"  LSOA 2011 codes resolved through the 2011->2021 lookup: {len(data.lsoa11_changed):,}",
        f"  ICBs: {len(data.icbs)} in {regions} NHS England regions",
        f"  trusts: {len(data.trusts):,} ({with_icb:,} with a home ICB)",
        f"  postcodes: {len(data.postcodes):,}",
        f"  England population (ONS mid-2019, on LSOA 2021): {round(england):,}",
        f"  Census 2021 residents with an ethnic group: {round(ethnic):,}",
    ]
    lines += [f"  optional file absent: {name}" for name in absent]
    return lines


def _check_header(path: Path, needed: tuple[str, ...]) -> None:
    try:
        with gzip.open(path, "rt", encoding="utf-8", newline="") as handle:
            header = next(csv.reader(handle), [])
    except (OSError, EOFError, UnicodeDecodeError, zlib.error) as exc:
        raise ConfigError(f"{path} is not a readable gzip CSV: {exc}") from exc
    if lacking := [c for c in needed if c not in header]:
        raise ConfigError(f"{path.name} lacks column {', '.join(lacking)}")
