"""A numpy implementation of ``core.counting.CountAccumulator`` for the ingest hot path.

The pure core's accumulator increments every store field of every event in Python: about
25 dictionary increments per event (2 granularities x 5 breakdowns x ~2.5 measures), the
largest per-event cost after Avro decoding. Here each event only appends two ints: its
time, and one code packing its groups, measures and ICB. The sums per (bucket, measure,
breakdown, group) are then ``np.bincount`` calls per chunk, and each bucket's fields are
filled from arrays in one ``dict.update`` rather than one Python assignment per field.
``deltas()`` returns exactly what the core accumulator returns (a test checks this on
random events), so the core stays the readable definition and this is only a speed-up.

Per-LSOA day fields (``core.counting.LSOA_MEASURES``) cannot be packed into the code
(33,755 LSOAs): events that need them also append their index and the chunk's number of
their LSOA, and ``deltas()`` counts (day, ICB, LSOA) triples with one ``np.unique`` per
measure into the ``LSOA_DAY`` buckets.
"""

from __future__ import annotations

from collections import Counter
from itertools import product
from typing import Final

import numpy as np
import numpy.typing as npt

from gapwatch.core.counting import (
    BREAKDOWN_IDS,
    ESP_CELLS,
    LSOA_DAY,
    LSOA_MEASURES,
    STANDARDISED_MEASURES,
    BucketKey,
    esp_field,
    lsoa_field,
)
from gapwatch.core.demographics import UNKNOWN
from gapwatch.core.enrich import Profile
from gapwatch.core.indicators import BREAKDOWNS
from gapwatch.core.measures import MEASURES
from gapwatch.core.windows import DAY_MS, HOUR_MS

__all__ = ["VectorAccumulator"]

Ints = npt.NDArray[np.int64]

_MEASURE_IDS: Final = ("events", *(m for m in MEASURES if m != "events"))
_BIT: Final = {m: 1 << i for i, m in enumerate(_MEASURE_IDS)}
_ETH_UNKNOWN: Final = _BIT["ethnicity_unknown"]
_RES_UNKNOWN: Final = _BIT["residence_unknown"]
_LSOA_BITS: Final = sum(_BIT[m] for m in LSOA_MEASURES)
_LSOA_MEASURE_IDS: Final = tuple(m for m in _MEASURE_IDS if m in LSOA_MEASURES)

# A profile's stored groups, in BREAKDOWN_IDS order, as one combined id; the lookup tables
# turn that id back into each breakdown's group index.
_GROUP_INDEX: Final = {by: {g: i for i, g in enumerate(BREAKDOWNS[by])} for by in BREAKDOWN_IDS}
_COMBOS: Final = list(product(*(BREAKDOWNS[by] for by in BREAKDOWN_IDS)))
_COMBO_ID: Final = {combo: i for i, combo in enumerate(_COMBOS)}
_LOOKUP: Final = {
    by: np.array([_GROUP_INDEX[by][combo[k]] for combo in _COMBOS], dtype=np.int64)
    for k, by in enumerate(BREAKDOWN_IDS)
}
_ESP_CELL_ID: Final = {cell: i for i, cell in enumerate(ESP_CELLS)}

# One event's code: combo id | ESP cell << 12 | measure bits << 21 | chunk ICB id << 40.
_ESP_SHIFT: Final = 12
_MASK_SHIFT: Final = 21
_ICB_SHIFT: Final = 40
_LSOA_SHIFTED: Final = _LSOA_BITS << _MASK_SHIFT
if (
    len(_COMBOS) > 1 << _ESP_SHIFT
    or len(ESP_CELLS) > 1 << (_MASK_SHIFT - _ESP_SHIFT)
    or len(_MEASURE_IDS) > _ICB_SHIFT - _MASK_SHIFT
):
    raise RuntimeError("the event code's bit fields are too narrow for the group lists")


def _number_fields() -> tuple[list[str], dict[tuple[str, str], int]]:
    """Every store field in one numbered list, and the number of the first field of each
    (measure, breakdown) block ("esp" for the ESP2013 cross). A cell of any bincount
    below is then a field number (first field + group index), and the names of all the
    cells of a chunk come from one array lookup."""
    names: list[str] = []
    first: dict[tuple[str, str], int] = {}
    for m in _MEASURE_IDS:
        for by in BREAKDOWN_IDS:
            first[(m, by)] = len(names)
            names += [f"{m}|{by}|{g}" for g in BREAKDOWNS[by]]
        if m in STANDARDISED_MEASURES:
            first[(m, "esp")] = len(names)
            names += [esp_field(m, *cell) for cell in ESP_CELLS]
    return names, first


_FIELD_NAMES, _FIRST_FIELD = _number_fields()
_NAME_OF: Final = np.array(_FIELD_NAMES, dtype=object)

_GroupKey = tuple[str, str, str, str, str, str]
_GROUP_CODES: dict[_GroupKey, int] = {}
"""(decile, ethnic group, age band, sex, quintile, ESP band) -> the code's group bits.
Bounded by the product of the group lists (a few thousand combinations occur)."""


def _group_code(key: _GroupKey) -> int:
    decile, ethnic, age, sex, quintile, esp = key
    code = _COMBO_ID[(decile, ethnic, age, sex)] | _ESP_CELL_ID[(quintile, sex, esp)] << _ESP_SHIFT
    if ethnic == UNKNOWN:  # Profile.ethnicity_unknown
        code |= _ETH_UNKNOWN << _MASK_SHIFT
    if quintile == UNKNOWN:  # Profile.residence_unknown
        code |= _RES_UNKNOWN << _MASK_SHIFT
    _GROUP_CODES[key] = code
    return code


class VectorAccumulator:
    """Collects events of one chunk; ``deltas()`` sums them per bucket field with numpy."""

    def __init__(self, hour_cutoff_ms: int) -> None:
        self.hour_cutoff_ms = hour_cutoff_ms - HOUR_MS
        self._occurred: list[int] = []
        self._codes: list[int] = []
        self._icb_ids: dict[str, int] = {}
        self._measure_bits: dict[tuple[str, ...], int] = {}
        # Events counted per LSOA (those with a resolved LSOA and a per-LSOA measure):
        # their index among all events, and their LSOA's number in this chunk.
        self._lsoa_events: list[int] = []
        self._lsoa_of: list[int] = []
        self._lsoa_ids: dict[str, int] = {}

    @property
    def events(self) -> int:
        return len(self._occurred)

    def add(self, occurred_at_ms: int, profile: Profile, measures: tuple[str, ...]) -> None:
        bits = self._measure_bits.get(measures)
        if bits is None:
            mask = _BIT["events"] | sum(_BIT[m] for m in measures)
            bits = self._measure_bits[measures] = mask << _MASK_SHIFT
        key = (
            profile.imd_decile,
            profile.ethnic_group,
            profile.age_band,
            profile.sex,
            profile.imd_quintile,
            profile.esp_band,
        )
        groups = _GROUP_CODES.get(key)
        if groups is None:
            groups = _group_code(key)
        icb = self._icb_ids.get(profile.icb)
        if icb is None:
            icb = self._icb_ids[profile.icb] = len(self._icb_ids)
        lsoa = profile.lsoa
        if lsoa and bits & _LSOA_SHIFTED:
            lsoa_id = self._lsoa_ids.get(lsoa)
            if lsoa_id is None:
                lsoa_id = self._lsoa_ids[lsoa] = len(self._lsoa_ids)
            self._lsoa_events.append(len(self._occurred))
            self._lsoa_of.append(lsoa_id)
        self._occurred.append(occurred_at_ms)
        self._codes.append(groups | bits | icb << _ICB_SHIFT)

    def deltas(self) -> dict[BucketKey, Counter[str]]:
        out: dict[BucketKey, Counter[str]] = {}
        if not self._occurred:
            return out
        occurred = np.array(self._occurred, dtype=np.int64)
        codes = np.array(self._codes, dtype=np.int64)
        hours = occurred - occurred % HOUR_MS
        combos = codes & ((1 << _ESP_SHIFT) - 1)
        esp = (codes >> _ESP_SHIFT) & ((1 << (_MASK_SHIFT - _ESP_SHIFT)) - 1)
        masks = (codes >> _MASK_SHIFT) & ((1 << (_ICB_SHIFT - _MASK_SHIFT)) - 1)
        icbs = codes >> _ICB_SHIFT
        icb_names = list(self._icb_ids)
        recent = hours > self.hour_cutoff_ms
        days = hours - hours % DAY_MS
        _sum_into(out, "d", days, icbs, combos, masks, esp, icb_names)
        if self._lsoa_events:
            which = np.array(self._lsoa_events, dtype=np.int64)
            lsoas = np.array(self._lsoa_of, dtype=np.int64)
            names = list(self._lsoa_ids)
            _sum_lsoas(out, days[which], icbs[which], masks[which], lsoas, names, icb_names)
        if recent.any():
            _sum_into(
                out,
                "h",
                hours[recent],
                icbs[recent],
                combos[recent],
                masks[recent],
                esp[recent],
                icb_names,
            )
        return out


def _sum_into(
    out: dict[BucketKey, Counter[str]],
    granularity: str,
    starts: Ints,
    icbs: Ints,
    combos: Ints,
    masks: Ints,
    esp: Ints,
    icb_names: list[str],
) -> None:
    # One row per distinct (ICB, bucket start) in the chunk. Hour numbers since the
    # epoch fit in 32 bits for 490,000 years, so (icb << 32 | hour) is a unique int.
    keys = (icbs << 32) | (starts // HOUR_MS)
    unique, inverse = np.unique(keys, return_inverse=True)
    cells = _Cells(len(unique))
    present = int(np.bitwise_or.reduce(masks))
    for measure in _MEASURE_IDS:
        bit = _BIT[measure]
        if not present & bit:
            continue
        has = (masks & bit) != 0
        rows = inverse[has]
        chosen = combos[has]
        for by in BREAKDOWN_IDS:
            cells.count(rows, _LOOKUP[by][chosen], len(BREAKDOWNS[by]), _FIRST_FIELD[(measure, by)])
        if granularity == "d" and measure in STANDARDISED_MEASURES:
            cells.count(rows, esp[has], len(ESP_CELLS), _FIRST_FIELD[(measure, "esp")])
    for key, names, counts in zip(unique.tolist(), *cells.by_row(), strict=True):
        bucket = (granularity, (key & 0xFFFFFFFF) * HOUR_MS, icb_names[key >> 32])
        # Each (row, field) was counted once above, so this sets, never adds (and is
        # dict's C update, not Counter's per-item Python loop).
        dict.update(out.setdefault(bucket, Counter()), zip(names, counts, strict=True))


def _sum_lsoas(
    out: dict[BucketKey, Counter[str]],
    days: Ints,
    icbs: Ints,
    masks: Ints,
    lsoas: Ints,
    lsoa_names: list[str],
    icb_names: list[str],
) -> None:
    """Per-LSOA day fields (``LSOA_DAY`` buckets): one ``np.unique`` per measure over
    (day, ICB, LSOA)."""
    keys = (icbs << 32) | (days // HOUR_MS)
    unique, rows = np.unique(keys, return_inverse=True)
    buckets = [
        out.setdefault((LSOA_DAY, (k & 0xFFFFFFFF) * HOUR_MS, icb_names[k >> 32]), Counter())
        for k in unique.tolist()
    ]
    width = len(lsoa_names)
    codes = np.array(lsoa_names, dtype=object)
    row_ends = np.arange(1, len(buckets) + 1)
    for measure in _LSOA_MEASURE_IDS:
        has = (masks & _BIT[measure]) != 0
        if not has.any():
            continue
        # Sorted by row, then LSOA: each bucket's fields are one slice.
        cells, counts = np.unique(rows[has] * width + lsoas[has], return_counts=True)
        names: list[str] = (lsoa_field(measure, "") + codes[cells % width]).tolist()
        n: list[int] = counts.tolist()
        begin = 0
        for row, end in enumerate(np.searchsorted(cells // width, row_ends).tolist()):
            if end > begin:
                # Each (bucket, LSOA) is counted once here: set, never add.
                dict.update(buckets[row], zip(names[begin:end], n[begin:end], strict=True))
                begin = end


class _Cells:
    """Non-zero (bucket row, field, count) cells, gathered then split by row."""

    def __init__(self, rows: int) -> None:
        self.rows = rows
        self._row: list[Ints] = []
        self._field: list[Ints] = []
        self._count: list[Ints] = []

    def count(self, rows: Ints, groups_of: Ints, groups: int, first_field: int) -> None:
        """Record, per bucket row, the number of events in each group (its field)."""
        cells = np.bincount(rows * groups + groups_of, minlength=self.rows * groups)
        nonzero = np.flatnonzero(cells)
        self._row.append(nonzero // groups)
        self._field.append(first_field + nonzero % groups)
        self._count.append(cells[nonzero])

    def by_row(self) -> tuple[list[list[str]], list[list[int]]]:
        """Per row: its field names and their counts."""
        rows = np.concatenate(self._row)
        order = np.argsort(rows, kind="stable")
        names: list[str] = _NAME_OF[np.concatenate(self._field)[order]].tolist()
        counts: list[int] = np.concatenate(self._count)[order].tolist()
        ends = np.searchsorted(rows[order], np.arange(1, self.rows + 1)).tolist()
        starts = [0, *ends[:-1]]
        return (
            [names[a:b] for a, b in zip(starts, ends, strict=True)],
            [counts[a:b] for a, b in zip(starts, ends, strict=True)],
        )
