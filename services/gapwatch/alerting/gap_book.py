"""The gap series of every ICB, kept up to date by re-reading only the days that changed.

The ingest worker stamps each day bucket it writes with a fresh id (``dayversions``).
``GapBook.refresh`` compares those ids with the ones it holds and re-reads just the
changed (ICB, day) buckets, and only the count fields the gaps need
(``core.period_gaps.GAP_FIELDS``, a few hundred of a bucket's thousand). Gap values per
(ICB, period, indicator, breakdown) are cached on the ids of the period's days, so a
late event re-computes one period of one ICB, not the chart.

Used by the alerter (every series, continuously) and by the API's series endpoint (one
series on request), each with its own book.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from gapwatch.core.gap_series import PERIOD_MS, GapPoint, Period, period_start
from gapwatch.core.indicators import CATALOGUE
from gapwatch.core.period_gaps import GAP_FIELDS, SeriesId, period_gaps
from gapwatch.core.refdata import ReferenceData
from gapwatch.core.windows import DAY_MS

__all__ = ["DayKey", "GapBook", "ReadDays"]

DayKey = tuple[str, int]
"""(ICB, day start ms)."""
ReadDays = Callable[[Sequence[DayKey], Sequence[str]], Awaitable[list[list[int]]]]
"""Reads the given fields of each day bucket (``RedisStore.read_day_fields``)."""

DAYS_PER_YEAR = 365.25
_Vector = npt.NDArray[np.int64]


@dataclass(slots=True)
class _CachedGaps:
    signature: tuple[str | None, ...]
    values: dict[tuple[str, str], dict[str, float | None]]
    """(indicator, breakdown) -> measure -> value."""


class GapBook:
    def __init__(self, ref: ReferenceData, reference_group: str, min_events: int = 0) -> None:
        self._ref = ref
        self._reference = reference_group
        self._min_events = min_events
        self._days: dict[DayKey, tuple[str, _Vector]] = {}
        self._gaps: dict[tuple[str, Period, int], _CachedGaps] = {}
        self.days_read = 0
        self.periods_computed = 0

    async def refresh(
        self,
        versions: Mapping[DayKey, str],
        read: ReadDays,
        oldest_day_ms: int,
        icbs: Iterable[str] | None = None,
    ) -> dict[str, set[int]]:
        """Re-read the day buckets (from ``oldest_day_ms``) whose write id changed; return
        ICB -> the days that changed. Days no longer in ``versions`` (expired, or a
        rebuilt store) are dropped and count as changed."""
        wanted = None if icbs is None else set(icbs)
        stale = [
            key
            for key, version in versions.items()
            if key[1] >= oldest_day_ms
            and (wanted is None or key[0] in wanted)
            and (key not in self._days or self._days[key][0] != version)
        ]
        changed: dict[str, set[int]] = {}
        for key in [k for k in self._days if k not in versions or k[1] < oldest_day_ms]:
            if wanted is None or key[0] in wanted:
                del self._days[key]
                changed.setdefault(key[0], set()).add(key[1])
        for start in range(0, len(stale), 500):
            batch = stale[start : start + 500]
            rows = await read(batch, GAP_FIELDS)
            for key, row in zip(batch, rows, strict=True):
                self._days[key] = (versions[key], np.asarray(row, dtype=np.int64))
                changed.setdefault(key[0], set()).add(key[1])
            self.days_read += len(batch)
        return changed

    def known_icbs(self) -> set[str]:
        return {icb for icb, _ in self._days}

    def series(
        self, icb: str, sid: SeriesId, period: Period, starts: Sequence[int]
    ) -> list[GapPoint]:
        """The series' gap in each period starting at ``starts``."""
        return [
            GapPoint(
                start, self.gaps(icb, period, start, sid.indicator, sid.breakdown).get(sid.measure)
            )
            for start in starts
        ]

    def gaps(
        self, icb: str, period: Period, start: int, indicator: str, by: str
    ) -> dict[str, float | None]:
        """Every gap measure of one period, from cache while its days are unchanged."""
        days = _days_of(period, start)
        signature = tuple(self._days[(icb, d)][0] if (icb, d) in self._days else None for d in days)
        key = (icb, period, start)
        cached = self._gaps.get(key)
        if cached is None or cached.signature != signature:
            cached = self._gaps[key] = _CachedGaps(signature, {})
        found = cached.values.get((indicator, by))
        if found is None:
            found = cached.values[(indicator, by)] = self._compute(icb, period, days, indicator, by)
        return found

    def open_gaps(
        self, icb: str, period: Period, start: int, sid: SeriesId, elapsed_ms: int
    ) -> float | None:
        """The gap of the period still open, over the ``elapsed_ms`` it has run so far
        (rates per year of elapsed time); never cached, as it changes by the second."""
        return self._compute(
            icb, period, _days_of(period, start), sid.indicator, sid.breakdown, elapsed_ms
        ).get(sid.measure)

    def forget_before(self, oldest_ms: int) -> None:
        for key in [k for k in self._gaps if k[2] < oldest_ms]:
            del self._gaps[key]

    def _compute(
        self,
        icb: str,
        period: Period,
        days: Sequence[int],
        indicator: str,
        by: str,
        elapsed_ms: int | None = None,
    ) -> dict[str, float | None]:
        self.periods_computed += 1
        vectors = [self._days[(icb, d)][1] for d in days if (icb, d) in self._days]
        if not vectors:
            return {}
        total = vectors[0] if len(vectors) == 1 else np.sum(vectors, axis=0)
        counts = dict(zip(GAP_FIELDS, total.tolist(), strict=True))
        years = (elapsed_ms or PERIOD_MS[period]) / DAY_MS / DAYS_PER_YEAR
        return period_gaps(
            CATALOGUE[indicator],
            by,
            counts,
            self._ref.population,
            (icb,),
            years,
            self._reference,
            self._min_events,
        )


def _days_of(period: Period, start: int) -> list[int]:
    if period_start(start, period) != start:
        raise ValueError(f"{start} is not the start of a {period}")
    return list(range(start, start + PERIOD_MS[period], DAY_MS))
