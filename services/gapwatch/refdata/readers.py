"""Opening the publishers' files as they are shipped, and finding their header rows.

Inputs arrive as a plain CSV, a CSV inside a ``.zip`` or a ``.gz``, in UTF-8 or in the
Windows-1252 Excel writes, and ONS CSVs exported from workbooks keep title rows above
the header. This module hides all of that: ``open_records`` yields the data rows keyed
by output column name (matched against the ``Source`` alias tables in ``sources``),
``open_positional`` the rows of a header-less file. Errors name the file and the column.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import math
import re
import zipfile
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from gapwatch.refdata.sources import Column, Source, SourceError, normalise_header

__all__ = ["Records", "open_positional", "open_records"]

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
