"""Event-time buckets and windows.

Counts are kept in hour and day buckets keyed by ``occurred_at`` (epoch ms, UTC). A window
is a half-open ``[start, end)`` range aligned to the hour; it is summed from the fewest
buckets: hours at the ragged edges, whole days in the middle.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Literal

__all__ = [
    "DAY_MS",
    "GRANULARITY_MS",
    "HOUR_MS",
    "Bucket",
    "Window",
    "bucket_start",
    "decompose",
    "parse_duration",
    "plan",
    "aligned_window",
    "rolling_window",
    "whole_days",
]

HOUR_MS: Final = 3_600_000
DAY_MS: Final = 24 * HOUR_MS

Granularity = Literal["h", "d"]
GRANULARITY_MS: Final[dict[str, int]] = {"h": HOUR_MS, "d": DAY_MS}


@dataclass(frozen=True, slots=True)
class Bucket:
    granularity: Granularity
    start_ms: int


@dataclass(frozen=True, slots=True)
class Window:
    start_ms: int
    end_ms: int

    @property
    def length_ms(self) -> int:
        return self.end_ms - self.start_ms


def bucket_start(ts_ms: int, size_ms: int) -> int:
    """Start of the epoch-aligned bucket of ``size_ms`` holding ``ts_ms``."""
    return ts_ms - ts_ms % size_ms


_DURATION = re.compile(r"^(\d{1,4})([hd])$")


def parse_duration(text: str) -> int:
    """``"24h"`` -> ms. Only whole hours and days, since buckets are hourly."""
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(f"window must look like 1h, 24h, 7d or 28d, got {text!r}")
    amount = int(match.group(1))
    if amount == 0:
        raise ValueError("window must be longer than zero")
    return amount * (HOUR_MS if match.group(2) == "h" else DAY_MS)


def rolling_window(now_ms: int, length_ms: int) -> Window:
    """The window of ``length_ms`` ending at the end of the current hour.

    The current, partial hour is included so the newest events show immediately.
    """
    end = bucket_start(now_ms, HOUR_MS) + HOUR_MS
    return Window(end - length_ms, end)


def aligned_window(start_ms: int, end_ms: int) -> Window:
    """Widen an arbitrary range outward to whole hours."""
    if end_ms <= start_ms:
        raise ValueError("window end must be after its start")
    start = bucket_start(start_ms, HOUR_MS)
    end = bucket_start(end_ms + HOUR_MS - 1, HOUR_MS)
    return Window(start, end)


def whole_days(window: Window) -> Window:
    """Widen a window outward to whole UTC days (what day-bucket-only figures read)."""
    end = bucket_start(window.end_ms + DAY_MS - 1, DAY_MS)
    return Window(bucket_start(window.start_ms, DAY_MS), end)


def plan(window: Window, hour_floor_ms: int) -> tuple[Window, list[Bucket]]:
    """The window actually summed, and its buckets, given hour buckets exist only from
    ``hour_floor_ms`` on: a ragged edge older than that widens outward to whole days."""
    start, end = window.start_ms, window.end_ms
    if start % DAY_MS and start < hour_floor_ms:
        start = bucket_start(start, DAY_MS)
    if end % DAY_MS and bucket_start(end, DAY_MS) < hour_floor_ms:
        end = bucket_start(end, DAY_MS) + DAY_MS
    widened = Window(start, end)
    return widened, decompose(widened)


def decompose(window: Window) -> list[Bucket]:
    """Cover an hour-aligned window exactly with hour and day buckets.

    >>> [b.granularity for b in decompose(Window(22 * HOUR_MS, DAY_MS + 2 * HOUR_MS))]
    ['h', 'h', 'h', 'h']
    """
    if window.start_ms % HOUR_MS or window.end_ms % HOUR_MS:
        raise ValueError("window must be aligned to whole hours")
    buckets: list[Bucket] = []
    t = window.start_ms
    end = window.end_ms
    while t < end and t % DAY_MS:
        buckets.append(Bucket("h", t))
        t += HOUR_MS
    while t + DAY_MS <= end:
        buckets.append(Bucket("d", t))
        t += DAY_MS
    while t < end:
        buckets.append(Bucket("h", t))
        t += HOUR_MS
    return buckets
