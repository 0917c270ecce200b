"""Aggregating enriched events into bucket deltas.

Per event only one tuple is counted (its *profile*: ICB, hour, measures, groups); the
expansion into store fields happens once per distinct profile when a chunk is flushed.
That keeps the per-event cost to one dictionary increment.

A store field is ``"<measure>|<breakdown>|<group>"`` inside the hash of one
(granularity, bucket start, ICB); the breakdown ``total`` has the single group ``all``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

from gapwatch.core.enrich import Profile
from gapwatch.core.windows import DAY_MS, HOUR_MS

__all__ = ["BucketKey", "CountAccumulator", "field_name", "split_field"]

BucketKey = tuple[str, int, str]
"""(granularity "h" or "d", bucket start ms, ICB ODS code)."""

_ProfileKey = tuple[str, int, tuple[str, ...], str, str, str, str, str]


def field_name(measure: str, by: str, group: str) -> str:
    return f"{measure}|{by}|{group}"


def split_field(name: str) -> tuple[str, str, str]:
    measure, by, group = name.split("|", 2)
    return measure, by, group


@dataclass(slots=True)
class CountAccumulator:
    """Counts events of one chunk; ``deltas()`` turns them into per-bucket increments."""

    profiles: Counter[_ProfileKey]
    events: int = 0

    @classmethod
    def empty(cls) -> CountAccumulator:
        return cls(Counter())

    def add(self, occurred_at_ms: int, profile: Profile, measures: tuple[str, ...]) -> None:
        if profile.ethnicity_unknown:
            measures = (*measures, "ethnicity_unknown")
        if profile.residence_unknown:
            measures = (*measures, "residence_unknown")
        key = (
            profile.icb,
            occurred_at_ms - occurred_at_ms % HOUR_MS,
            measures,
            profile.imd_quintile,
            profile.imd_decile,
            profile.ethnic_group,
            profile.age_band,
            profile.sex,
        )
        self.profiles[key] += 1
        self.events += 1

    def deltas(self) -> dict[BucketKey, Counter[str]]:
        """Increments per bucket: each event adds 1 to ``events`` and to each of its
        measures, under every breakdown, in both its hour and its day bucket."""
        out: dict[BucketKey, Counter[str]] = {}
        for (icb, hour, measures, q, d, eth, age, sex), n in self.profiles.items():
            hour_fields = out.setdefault(("h", hour, icb), Counter())
            day_fields = out.setdefault(("d", hour - hour % DAY_MS, icb), Counter())
            for name in _fields(("events", *measures), q, d, eth, age, sex):
                hour_fields[name] += n
                day_fields[name] += n
        return out


def _fields(
    measures: tuple[str, ...], q: str, d: str, eth: str, age: str, sex: str
) -> Iterator[str]:
    for m in measures:
        yield f"{m}|total|all"
        yield f"{m}|imd_quintile|{q}"
        yield f"{m}|imd_decile|{d}"
        yield f"{m}|ethnic_group|{eth}"
        yield f"{m}|age_band|{age}"
        yield f"{m}|sex|{sex}"
