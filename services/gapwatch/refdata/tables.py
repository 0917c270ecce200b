"""The output side of the build: one file's rows, how they are written, what the loader needs.

Every transform returns a ``Table`` (file name, header, sorted rows) and nothing touches
the disk until every input has been read and checked; ``write_table`` then writes each
as a gzip CSV that is byte-for-byte reproducible. ``LOADER_COLUMNS`` is the contract
with ``adapters.refdata_files``: the columns it reads, which ``refdata check`` requires.
"""

from __future__ import annotations

import csv
import gzip
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from gapwatch.refdata.sources import AGES, ETHNIC_GROUPS

__all__ = ["LOADER_COLUMNS", "Cell", "Row", "Table", "write_table"]

Cell = str | int
Row = tuple[Cell, ...]


@dataclass(frozen=True, slots=True)
class Table:
    filename: str
    header: tuple[str, ...]
    rows: list[Row]

    def column(self, name: str) -> list[Cell]:
        index = self.header.index(name)
        return [row[index] for row in self.rows]


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
    "population": ("lsoa11_code", "sex", *AGES),
    "ethnicity": ("lsoa21_code", *(f"ethnic_group_{k}" for k, _ in ETHNIC_GROUPS)),
}
