"""``gapwatch spc INPUT.csv``: chart any series the NHS way, for analysts.

Reads ``date,value`` (and optionally ``rebase``, 1 on the first point of a new period),
writes one CSV row per point to stdout with the Making Data Count limits and
NHSRplotthedots' point type and special-cause label (``core.spc``), and prints the
variation and assurance icons to stderr. ``-`` reads standard input.

Exit codes: 0 done, 2 unreadable input or bad options (the message names the line).
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any, TextIO

from gapwatch.core.spc import Direction, SpcOptions, SpcResult, spc
from gapwatch.settings import Settings

__all__ = ["SeriesError", "read_series", "register", "write_chart"]

COLUMNS = (
    "date",
    "value",
    "mean",
    "lpl",
    "upl",
    "lower_2sigma",
    "upper_2sigma",
    "point_type",
    "rule",
)


class SeriesError(ValueError):
    """The input cannot be charted; the message says where and why."""


@dataclass(frozen=True, slots=True)
class Series:
    dates: list[str]
    values: list[float]
    rebase: list[bool]


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "spc",
        help="Making Data Count XmR chart of a CSV series (date,value[,rebase]) as CSV",
    )
    parser.add_argument(
        "input", help="CSV with columns date,value and optionally rebase; - = stdin"
    )
    parser.add_argument(
        "--improvement",
        choices=["increase", "decrease", "neutral"],
        default="increase",
        help="which direction is better (default increase, as NHSRplotthedots)",
    )
    parser.add_argument("--target", type=float, help="target value, for the assurance icon")
    parser.add_argument(
        "--fix-after", type=int, metavar="N", help="limits from the first N points of a period"
    )
    parser.add_argument(
        "--no-screen-outliers",
        action="store_true",
        help="keep every moving range (the MDC Excel tools) instead of screening at 3.267",
    )
    parser.add_argument(
        "--two-in-three",
        choices=["band", "beyond"],
        default="band",
        help="band: points between 2 sigma and the limit (NHSRplotthedots 0.2.2); "
        "beyond: every point beyond 2 sigma (MDC since late 2023)",
    )
    parser.add_argument(
        "--run-length", type=int, default=7, metavar="N", help="points for a shift or trend"
    )
    parser.set_defaults(func=_run)


def read_series(lines: Iterable[str]) -> Series:
    """Parse and check the CSV; points are charted in date order."""
    reader = csv.DictReader(lines)
    fields = set(reader.fieldnames or ())
    if not {"date", "value"} <= fields:
        raise SeriesError(
            f"line 1: the header must name date and value columns, got {sorted(fields)}"
        )
    rows: list[tuple[date | datetime, str, float, bool]] = []
    for row in reader:
        line = reader.line_num
        when = _parse_date(row.get("date") or "", line)
        try:
            value = float(row.get("value") or "")
        except ValueError:
            raise SeriesError(f"line {line}: value {row.get('value')!r} is not a number") from None
        if not math.isfinite(value):
            raise SeriesError(f"line {line}: value {row.get('value')!r} is not finite")
        flag = (row.get("rebase") or "0").strip()
        if flag not in ("0", "1", ""):
            raise SeriesError(f"line {line}: rebase must be 1 or 0, got {flag!r}")
        rows.append((when, str(row["date"]).strip(), value, flag == "1"))
    if not rows:
        raise SeriesError("no data rows")
    rows.sort(key=lambda r: r[0])
    for earlier, later in zip(rows, rows[1:], strict=False):
        if earlier[0] == later[0]:
            raise SeriesError(f"date {later[1]} appears more than once")
    return Series([r[1] for r in rows], [r[2] for r in rows], [r[3] for r in rows])


def _parse_date(text: str, line: int) -> date | datetime:
    text = text.strip()
    try:
        return date.fromisoformat(text) if len(text) == 10 else datetime.fromisoformat(text)
    except ValueError:
        raise SeriesError(f"line {line}: date {text!r} is not an ISO 8601 date") from None


def write_chart(series: Series, chart: SpcResult, out: TextIO) -> None:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for when, point in zip(series.dates, chart.points, strict=True):
        limits = point.limits
        writer.writerow(
            [
                when,
                _number(point.value),
                *(
                    _number(x)
                    for x in (
                        limits.mean,
                        limits.lpl,
                        limits.upl,
                        limits.lower_2sigma,
                        limits.upper_2sigma,
                    )
                ),
                point.point_type,
                point.special_cause,
            ]
        )


def _number(x: float) -> str:
    """Full precision (repr), empty where a period has too few points for limits."""
    return "" if math.isnan(x) else repr(x)


def _run(args: argparse.Namespace, settings: Settings) -> int:
    try:
        options = SpcOptions(
            screen_outliers=not args.no_screen_outliers,
            two_in_three=args.two_in_three,
            run_length=args.run_length,
            fix_after=args.fix_after,
        )
        if args.input == "-":
            series = read_series(sys.stdin)
        else:
            with Path(args.input).open(newline="", encoding="utf-8") as handle:
                series = read_series(handle)
    except (OSError, ValueError) as exc:
        sys.stderr.write(f"spc: {exc}\n")
        return 2
    direction: Direction = args.improvement
    chart = spc(series.values, direction, rebase=series.rebase, target=args.target, options=options)
    try:
        write_chart(series, chart, sys.stdout)
        sys.stdout.flush()
    except BrokenPipeError:  # e.g. piped into head: not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    latest = chart.points[-1]
    sys.stderr.write(f"variation: {chart.variation}\n")
    sys.stderr.write(f"assurance: {chart.assurance or 'none (no target, or neutral)'}\n")
    if latest.limits.trial:
        sys.stderr.write(
            f"trial limits: the latest period has {latest.limits.points} points (< 13)\n"
        )
    return 0
