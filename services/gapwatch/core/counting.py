"""Aggregating enriched events into bucket deltas.

Per event, the fields to increment depend only on its measures and groups, so their
names are built once per distinct combination and cached.

A store field is ``"<measure>|<breakdown>|<group>"`` inside the hash of one
(granularity, bucket start, ICB). Only what cannot be derived is stored: there is no
total (every event falls in exactly one group of every breakdown, ``unknown`` included,
so a total is the sum over any one breakdown: ``total_of``) and no IMD quintile (quintile
q is deciles 2q-1 and 2q: ``read_count``). That keeps the per-event writes to four
breakdowns.

Numerators of rates are also counted once per event, in day buckets only, in a cross of
IMD quintile, sex and ESP2013 age band (field ``"<measure>|esp|<quintile>/<sex>/<band>"``):
what a directly age-standardised rate needs for any IMD quintile or sex group, and the
total (``esp_counts``). That cross can hold 6 x 4 x 20 fields per measure and is sparse
in an hour, so it stays out of hour buckets (it was a third of all fields written there);
age-standardised rates are therefore read over whole days.

Numerators of rates are also counted per LSOA 2021 of residence, by day, for small-area
drill-down (field ``"<measure>|lsoa|<LSOA21 code>"``, only for events whose residence
resolved to an LSOA), in a bucket of their own: granularity ``LSOA_DAY`` ("l"), one hash
per (day, ICB) beside the day bucket. They are written by the same atomic apply (it
takes any bucket) and cleared by the same rebuild. Not in the day hash itself, because
every indicator read sums whole day hashes (HGETALL) and the LSOA fields would double
or triple them (measured: a busy ICB's day hash went from ~950 to ~3,800 fields);
not summed into England either (nothing reads a national LSOA list).

Every bucket is also summed into an England bucket (``ENGLAND``, see ``with_england``)
at write time, so an England comparator costs one ICB's read, not 42.

Hour buckets are written only for events newer than ``hour_cutoff_ms`` (recent data, for
short windows); every event goes to its day bucket.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

from gapwatch.core.demographics import ESP_BANDS, SEX_GROUPS, UNKNOWN
from gapwatch.core.enrich import Profile
from gapwatch.core.indicators import BREAKDOWNS, CATALOGUE
from gapwatch.core.windows import DAY_MS, HOUR_MS

__all__ = [
    "BREAKDOWN_IDS",
    "ESP_CELLS",
    "LSOA_DAY",
    "LSOA_MEASURES",
    "STANDARDISED_MEASURES",
    "ENGLAND",
    "BucketKey",
    "CountAccumulator",
    "esp_counts",
    "esp_field",
    "lsoa_field",
    "read_count",
    "total_of",
    "with_england",
]

BucketKey = tuple[str, int, str]
"""(granularity "h", "d" or ``LSOA_DAY``, bucket start ms, ICB ODS code)."""

_FieldsKey = tuple[tuple[str, ...], str, str, str, str, str, str]

BREAKDOWN_IDS = ("imd_decile", "ethnic_group", "age_band", "sex")
"""The breakdowns stored per event; the others are derived on read."""
_TOTAL_VIA = "sex"

STANDARDISED_MEASURES = frozenset(i.numerator for i in CATALOGUE.values() if i.kind == "rate")
"""Measures counted by (IMD quintile, sex, ESP2013 band) for age-standardised rates."""
ESP_CELLS: tuple[tuple[str, str, str], ...] = tuple(
    (q, sex, band)
    for q in BREAKDOWNS["imd_quintile"]
    for sex in SEX_GROUPS
    for band in (*ESP_BANDS, UNKNOWN)
)
"""Every (quintile, sex, ESP band) an event can fall in, unknowns included."""

LSOA_MEASURES = STANDARDISED_MEASURES
"""Measures counted per LSOA 2021 (day buckets): the numerators of the rate indicators
(``ed_arrival``, ``admission_emergency``, ``admission_emergency_u18``)."""
LSOA_TAG = "|lsoa|"
LSOA_DAY = "l"
"""The granularity of the per-LSOA day buckets (a day long, like "d")."""

ENGLAND = "ENG"
"""The ICB slot of the England buckets: the sum of every ICB's bucket."""


def esp_field(measure: str, quintile: str, sex: str, band: str) -> str:
    return f"{measure}|esp|{quintile}/{sex}/{band}"


def lsoa_field(measure: str, lsoa21: str) -> str:
    return f"{measure}{LSOA_TAG}{lsoa21}"


def with_england(deltas: dict[BucketKey, Counter[str]]) -> dict[BucketKey, Counter[str]]:
    """Add to ``deltas`` each bucket's England total (events with no ICB are left out:
    England is the sum of its ICBs), except the per-LSOA buckets."""
    england: dict[BucketKey, Counter[str]] = {}
    for (granularity, start, icb), fields in deltas.items():
        if icb in (ENGLAND, UNKNOWN) or granularity == LSOA_DAY:
            continue
        total = england.get((granularity, start, ENGLAND))
        if total is None:
            total = england[(granularity, start, ENGLAND)] = Counter()
        total.update(fields)
    deltas.update(england)
    return deltas


def esp_counts(counts: Mapping[str, int], measure: str, by: str, group: str) -> dict[str, int]:
    """A standardised measure's count per ESP2013 band for one group of ``total``,
    ``imd_quintile`` or ``sex`` (band ``unknown``: age not known)."""
    prefix = f"{measure}|esp|"
    out: dict[str, int] = {}
    for key, n in counts.items():
        if not key.startswith(prefix):
            continue
        quintile, sex, band = key[len(prefix) :].split("/")
        if (
            by == "total"
            or (by == "sex" and sex == group)
            or (by == "imd_quintile" and quintile == group)
        ):
            out[band] = out.get(band, 0) + n
    return out


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
    """A measure's total: the sum over the groups of one breakdown (every event is in
    exactly one sex group, ``unknown`` included)."""
    return sum(counts.get(f"{measure}|{_TOTAL_VIA}|{g}", 0) for g in SEX_GROUPS)


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
            profile.esp_band,
            profile.imd_quintile,
        )
        found = _FIELDS_CACHE.get(key)
        if found is None:
            found = _FIELDS_CACHE[key] = _fields(key)
        names, hour_names = found
        hour = occurred_at_ms - occurred_at_ms % HOUR_MS
        icb = profile.icb
        buckets = self.buckets
        day_key = ("d", hour - hour % DAY_MS, icb)
        counter = buckets.get(day_key)
        if counter is None:
            counter = buckets[day_key] = Counter()
        counter.update(names)
        lsoa = profile.lsoa
        if lsoa and not LSOA_MEASURES.isdisjoint(measures):
            lsoa_key = (LSOA_DAY, day_key[1], icb)
            counter = buckets.get(lsoa_key)
            if counter is None:
                counter = buckets[lsoa_key] = Counter()
            counter.update(lsoa_field(m, lsoa) for m in measures if m in LSOA_MEASURES)
        if hour > self.hour_cutoff_ms:
            hour_key = ("h", hour, icb)
            counter = buckets.get(hour_key)
            if counter is None:
                counter = buckets[hour_key] = Counter()
            counter.update(hour_names)
        self.events += 1

    def deltas(self) -> dict[BucketKey, Counter[str]]:
        """Increments per bucket: each event adds 1 to ``events`` and to each of its
        measures, under every breakdown, in its day bucket (and hour bucket if recent);
        the ESP2013 cross goes to day buckets only, the per-LSOA fields to ``LSOA_DAY``
        buckets."""
        return self.buckets


# Bounded by the number of distinct (measures, groups) combinations: about 20 measure
# sets x 11 x 6 x 7 x 4 x 20 groups at most, far fewer in practice.
_FIELDS_CACHE: dict[_FieldsKey, tuple[tuple[str, ...], tuple[str, ...]]] = {}


def _fields(key: _FieldsKey) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(day bucket fields, hour bucket fields) of one combination."""
    measures, d, eth, age, sex, esp, quintile = key
    hour: list[str] = []
    for m in ("events", *measures):
        hour += (
            f"{m}|imd_decile|{d}",
            f"{m}|ethnic_group|{eth}",
            f"{m}|age_band|{age}",
            f"{m}|sex|{sex}",
        )
    standardised = [
        esp_field(m, quintile, sex, esp) for m in measures if m in STANDARDISED_MEASURES
    ]
    return (*hour, *standardised), tuple(hour)
