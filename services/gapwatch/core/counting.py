"""Aggregating enriched events into bucket deltas.

Per event, the fields to increment depend only on its measures and groups, so their
names are built once per distinct combination and cached.

A store field is ``"<measure>|<breakdown>|<group>"`` inside the hash of one
(granularity, bucket start, ICB). Only what cannot be derived is stored: there is no
total (every event falls in exactly one group of every breakdown, ``unknown`` included,
so a total is the sum over any one breakdown: ``total_of``) and no IMD quintile (quintile
q is deciles 2q-1 and 2q: ``read_count``). That keeps the per-event writes to four
breakdowns.

Hour buckets are written only for events newer than ``hour_cutoff_ms`` (recent data, for
short windows); every event goes to its day bucket.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

from gapwatch.core.enrich import Profile
from gapwatch.core.windows import DAY_MS, HOUR_MS

__all__ = [
    "BREAKDOWN_IDS",
    "BucketKey",
    "CountAccumulator",
    "read_count",
    "total_of",
]

BucketKey = tuple[str, int, str]
"""(granularity "h" or "d", bucket start ms, ICB ODS code)."""

_FieldsKey = tuple[tuple[str, ...], str, str, str, str]

BREAKDOWN_IDS = ("imd_decile", "ethnic_group", "age_band", "sex")
"""The breakdowns stored per event; the others are derived on read."""
_TOTAL_VIA = "sex"
_QUINTILE_DECILES = {str(q): (str(2 * q - 1), str(2 * q)) for q in range(1, 6)}


def read_count(counts: Mapping[str, int], measure: str, by: str, group: str) -> int:
    """A measure's count for one group of any breakdown, stored or derived."""
    if by == "total":
        return total_of(counts, measure)
    if by == "imd_quintile":
        deciles = _QUINTILE_DECILES.get(group, (group,))
        return sum(counts.get(f"{measure}|imd_decile|{d}", 0) for d in deciles)
    return counts.get(f"{measure}|{by}|{group}", 0)


def total_of(counts: Mapping[str, int], measure: str) -> int:
    """A measure's total: the sum over the groups of one breakdown."""
    prefix = f"{measure}|{_TOTAL_VIA}|"
    return sum(v for k, v in counts.items() if k.startswith(prefix))


@dataclass(slots=True)
class CountAccumulator:
    """Counts the events of one chunk straight into per-bucket field counters.

    The store fields an event touches depend only on its measures and groups, so the
    tuple of field names is built once per distinct combination and cached; per event
    the work is one cache lookup and one C-level ``Counter.update`` per bucket.
    """

    hour_cutoff_ms: int
    buckets: dict[BucketKey, Counter[str]]
    events: int = 0

    @classmethod
    def empty(cls, hour_cutoff_ms: int) -> CountAccumulator:
        return cls(hour_cutoff_ms - HOUR_MS, {})

    def add(self, occurred_at_ms: int, profile: Profile, measures: tuple[str, ...]) -> None:
        if profile.ethnicity_unknown:
            measures = (*measures, "ethnicity_unknown")
        if profile.residence_unknown:
            measures = (*measures, "residence_unknown")
        key = (
            measures,
            profile.imd_decile,
            profile.ethnic_group,
            profile.age_band,
            profile.sex,
        )
        names = _FIELDS_CACHE.get(key)
        if names is None:
            names = _FIELDS_CACHE[key] = _fields(key)
        hour = occurred_at_ms - occurred_at_ms % HOUR_MS
        icb = profile.icb
        buckets = self.buckets
        day_key = ("d", hour - hour % DAY_MS, icb)
        counter = buckets.get(day_key)
        if counter is None:
            counter = buckets[day_key] = Counter()
        counter.update(names)
        if hour > self.hour_cutoff_ms:
            hour_key = ("h", hour, icb)
            counter = buckets.get(hour_key)
            if counter is None:
                counter = buckets[hour_key] = Counter()
            counter.update(names)
        self.events += 1

    def deltas(self) -> dict[BucketKey, Counter[str]]:
        """Increments per bucket: each event adds 1 to ``events`` and to each of its
        measures, under every breakdown, in its day bucket (and hour bucket if recent)."""
        return self.buckets


# Bounded by the number of distinct (measures, groups) combinations: about 20 measure
# sets x 11 x 6 x 7 x 4 groups at most, far fewer in practice.
_FIELDS_CACHE: dict[_FieldsKey, tuple[str, ...]] = {}


def _fields(key: _FieldsKey) -> tuple[str, ...]:
    measures, d, eth, age, sex = key
    out: list[str] = []
    for m in ("events", *measures):
        out += (
            f"{m}|imd_decile|{d}",
            f"{m}|ethnic_group|{eth}",
            f"{m}|age_band|{age}",
            f"{m}|sex|{sex}",
        )
    return tuple(out)
