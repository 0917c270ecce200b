"""Seeded synthetic encounter streams over the real reference data, for demos and benches.

A bug report can name a seed: ``Scenario(data, ScenarioConfig(seed=7))`` always yields the
same events for the same calls, because every draw comes from one ``random.Random(seed)``
in a fixed order. Where the patient lives, who they are and what happens to them follow
the published geography, so the dashboard shows real places; the *size* of each gap is
illustrative, built in through the per-quintile tables below, so the pipeline has a
known inequality to find.

How one event is drawn: event type (by the mix) -> trust (by its estimated size, see
``ScenarioData.trust_size``) -> ICB of residence (by the trust's OHID catchment shares)
-> LSOA in that ICB (by Census 2021 usual residents x the quintile multiplier for the
activity) -> age, sex, ethnic category (from that LSOA's census mix) -> type fields.
Speed matters (bench runs want >= 100k events/s), so every choice is one ``random()``
and one ``bisect`` over cumulative weights computed once.
"""

from __future__ import annotations

import csv
import gzip
import logging
import math
from bisect import bisect
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from functools import lru_cache
from pathlib import Path
from random import Random
from statistics import NormalDist
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from gapwatch.adapters.refdata_files import FILES, load_reference_data
from gapwatch.core.errors import ConfigError
from gapwatch.core.refdata import ReferenceData
from gapwatch.core.windows import DAY_MS, HOUR_MS

__all__ = [
    "DATASET_OF",
    "DEFAULT_MIX",
    "EVENT_TYPES",
    "Scenario",
    "ScenarioConfig",
    "ScenarioData",
    "build_scenario_data",
    "load_scenario_data",
    "parse_mix",
]

logger = logging.getLogger(__name__)

Event = dict[str, Any]
"""One EncounterEvent as the Avro codec takes it (schemas/gapwatch.events.EncounterEvent)."""

EVENT_TYPES: Final = (
    "ed_arrival",
    "ed_departure",
    "admission",
    "outpatient_appointment",
    "waiting_list_snapshot",
)
DATASET_OF: Final[Mapping[str, str]] = {
    "ed_arrival": "ECDS",
    "ed_departure": "ECDS",
    "admission": "APC",
    "outpatient_appointment": "OPA",
    "waiting_list_snapshot": "WLMDS",
}
DEFAULT_MIX: Final[Mapping[str, float]] = {
    "ed_arrival": 0.40,
    "ed_departure": 0.20,
    "admission": 0.15,
    "outpatient_appointment": 0.20,
    "waiting_list_snapshot": 0.05,
}

# Activity classes: the unit at which deprivation and age shape who turns up.
_CLASS_OF_TYPE: Final = {
    "ed_arrival": "ed",
    "ed_departure": "ed",
    "outpatient_appointment": "outpatient",
    "waiting_list_snapshot": "waiting",
}  # admission is "emergency" or "elective", decided per event.
_CLASSES: Final = ("ed", "emergency", "elective", "outpatient", "waiting")

# Residents x this multiplier (national IMD quintile 1 = most deprived .. 5) weight the
# LSOA choice. Q1/Q5 = 2 for ED and emergency admissions is the order of the gap NHS
# England reports; elective care is flat, which (given more need in Q1) is itself a gap.
QUINTILE_MULTIPLIER: Final[Mapping[str, tuple[float, ...]]] = {
    "ed": (1.6, 1.35, 1.15, 0.95, 0.8),
    "emergency": (1.7, 1.4, 1.15, 0.95, 0.8),
    "elective": (1.0, 1.0, 1.0, 1.0, 1.0),
    "outpatient": (1.1, 1.05, 1.0, 1.0, 0.95),
    "waiting": (1.05, 1.0, 1.0, 1.0, 0.95),
}
DNA_PROBABILITY: Final = (0.12, 0.10, 0.08, 0.065, 0.05)
"""P(status 3) among appointments with an outcome (3, 5, 6, 7), by quintile."""
BREACH_4H_PROBABILITY: Final = (0.29, 0.27, 0.25, 0.23, 0.21)
"""P(minutes_in_department > 240), by quintile: about 25% overall, as in type 1 EDs."""
_ED_MINUTES_SIGMA: Final = 0.85
"""Log-scale spread of time in department; 0.85 puts ~2-3% over 12 hours."""
_WAIT_MU: Final = (2.81, 2.78, 2.75, 2.72, 2.69)
_WAIT_SIGMA: Final = 0.613
"""Lognormal weeks waiting: median ~15.6 weeks, ~41% over 18, ~2.5% over 52 (RTT-like)."""

# Age shares by band (lo, hi inclusive, share) per activity class; uniform within a band.
_AGE_BANDS: Final = ((0, 4), (5, 17), (18, 39), (40, 64), (65, 79), (80, 89), (90, 100))
_AGE_SHARES: Final[Mapping[str, tuple[float, ...]]] = {
    "ed": (9, 12, 30, 25, 13, 8.5, 2.5),
    "emergency": (6, 4, 15, 22, 25, 21, 7),
    "elective": (1, 3, 14, 37, 33, 10, 2),
    "outpatient": (3, 7, 20, 33, 25, 10, 2),
    "waiting": (2, 6, 18, 36, 28, 9, 1),
}
# fmt: off
_FEMALE_SHARE: Final = {"ed": 0.51, "emergency": 0.52, "elective": 0.54, "outpatient": 0.57,
                        "waiting": 0.56}
_SEX_9: Final = 0.001
_SEX_X: Final = 0.007
_AGE_MISSING: Final = 0.003

# Census 2021 high-level group -> NHS ETHNIC CATEGORY codes, weighted by the England
# shares of the detailed census groups (Chinese is Asian in the census but R here).
_ETHNIC_CODES: Final = (
    (("A", 0.91), ("B", 0.011), ("C", 0.079)),
    (("D", 0.30), ("E", 0.13), ("F", 0.27), ("G", 0.30)),
    (("H", 0.35), ("J", 0.28), ("K", 0.115), ("L", 0.18), ("R", 0.075)),
    (("M", 0.27), ("N", 0.60), ("P", 0.13)),
    (("S", 1.0),),
)
_UNKNOWN_ETHNICITY: Final = (("Z", 0.55), ("99", 0.37), (None, 0.08))
_ED_TYPES: Final = (("01", 0.72), ("02", 0.02), ("03", 0.24), ("04", 0.02))
_EMERGENCY_METHODS: Final = (("21", 0.70), ("22", 0.10), ("23", 0.03), ("24", 0.02),
                             ("25", 0.01), ("28", 0.10), ("2A", 0.02), ("2B", 0.01),
                             ("2C", 0.005), ("2D", 0.005))
_ELECTIVE_METHODS: Final = (("11", 0.55), ("12", 0.15), ("13", 0.30))
_CANCELLED: Final = (("2", 0.06), ("4", 0.05))
_ATTENDED: Final = (("5", 0.93), ("6", 0.06), ("7", 0.01))

# Local-time activity by hour 00..23, for backfill timestamps (urgent = ED-like,
# planned = clinic hours). Relative weights; planned activity at weekends is a tenth.
_URGENT_BY_HOUR: Final = (2.6, 2.1, 1.8, 1.5, 1.4, 1.5, 2.0, 3.0, 4.6, 5.8, 6.3, 6.3,
                          6.0, 5.8, 5.6, 5.5, 5.5, 5.6, 5.5, 5.2, 4.8, 4.3, 3.7, 3.1)
_PLANNED_BY_HOUR: Final = (0.05, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05, 0.5, 3.0, 6.0, 6.5, 6.0,
                           4.0, 5.5, 6.0, 5.5, 4.0, 1.5, 0.3, 0.1, 0.05, 0.05, 0.05, 0.05)
# fmt: on
_PLANNED_WEEKEND: Final = 0.1
# Version 4, variant 10xx: the same bits uuid.UUID(int=..., version=4) sets, without
# building a UUID object (that took a third of the per-event time).
_UUID_CLEAR: Final = ~((0xF000 << 64) | (0xC000 << 48)) & ((1 << 128) - 1)
_UUID_SET: Final = (0x4000 << 64) | (0x8000 << 48)
_TIME_SHAPE: Final = {  # event type -> (urgent share, hours urgent lags arrival)
    "ed_arrival": (1.0, 0),
    "ed_departure": (1.0, 3),
    "admission": (0.6, 4),
    "outpatient_appointment": (0.0, 0),
    "waiting_list_snapshot": (0.0, 0),
}


_ETHNIC_COLUMNS: Final = tuple(
    f"ethnic_group_{g}" for g in ("white", "mixed", "asian", "black", "other")
)  # the order of _ETHNIC_CODES


@dataclass(frozen=True, slots=True)
class ScenarioData:
    """Static tables the generator draws from, built once per reference directory.

    LSOAs are indexed 0..n-1; the per-LSOA tuples share that index.
    """

    codes: tuple[str, ...]
    """LSOA 2021 codes in England that have Census 2021 residents."""
    quintile: tuple[int, ...]
    """National IMD 2025 quintile, 1 = most deprived."""
    residents: tuple[int, ...]
    """Census 2021 usual residents: the weight for placing patients."""
    ethnic_cum: tuple[tuple[int, ...], ...]
    """Cumulative census counts White, Mixed, Asian, Black, Other (for ``bisect``)."""
    lsoas_of_icb: Mapping[str, list[int]]
    trust_catchment: Mapping[str, tuple[tuple[str, float], ...]]
    """Open trusts with OHID catchment data -> (ICB, share of patients from it)."""
    trust_size: Mapping[str, float]
    """Relative size of each trust, fitted so catchment flows reproduce ICB residents."""


@lru_cache(maxsize=4)
def load_scenario_data(refdata_dir: Path) -> ScenarioData:
    """Read the reference directory (``Settings.refdata.dir``) once per process."""
    ref = load_reference_data(refdata_dir, with_population=False)
    census = list(_csv_rows(refdata_dir / FILES["ethnicity"]))
    open_trusts = {
        r["org_code"] for r in _csv_rows(refdata_dir / FILES["trusts"]) if r["is_open"] == "True"
    }
    return build_scenario_data(ref, census, open_trusts)


def _csv_rows(path: Path) -> Iterator[dict[str, str]]:
    if not path.is_file():
        raise ConfigError(f"the synthetic scenario needs {path}")
    with gzip.open(path, "rt", newline="", encoding="utf-8") as handle:
        yield from csv.DictReader(handle)


def build_scenario_data(
    ref: ReferenceData, census: Iterable[Mapping[str, str]], open_trusts: set[str] | None = None
) -> ScenarioData:
    """Join census residents onto the 2021 LSOAs of ``ref``; keep open trusts with
    catchment data (all trusts with catchment when ``open_trusts`` is None)."""
    codes: list[str] = []
    quintile: list[int] = []
    residents: list[int] = []
    ethnic_cum: list[tuple[int, ...]] = []
    lsoas_of_icb: dict[str, list[int]] = defaultdict(list)
    for row in census:
        area = ref.areas.get(row["lsoa21_code"])
        people = int(row["usual_residents_total"])
        if area is None or area.lsoa21 != row["lsoa21_code"] or people <= 0:
            continue  # Welsh, or a 2011 code resolved to a 2021 one (the five groups sum
            # to the total in every row, PROVENANCE.md section 12)
        lsoas_of_icb[area.icb].append(len(codes))
        codes.append(area.lsoa21)
        quintile.append(area.imd_quintile)
        residents.append(people)
        ethnic_cum.append(tuple(int(x) for x in _cum([int(row[c]) for c in _ETHNIC_COLUMNS])))
    if not codes:
        raise ConfigError("no English LSOA 2021 has census residents in the reference data")
    catchment = {
        t.ods_code: t.catchment
        for t in ref.trusts.values()
        if t.catchment and (open_trusts is None or t.ods_code in open_trusts)
    }
    icb_people = {icb: float(sum(residents[i] for i in idx)) for icb, idx in lsoas_of_icb.items()}
    return ScenarioData(
        tuple(codes),
        tuple(quintile),
        tuple(residents),
        tuple(ethnic_cum),
        dict(lsoas_of_icb),
        catchment,
        _fit_trust_sizes(catchment, icb_people),
    )


def _fit_trust_sizes(
    catchment: Mapping[str, tuple[tuple[str, float], ...]],
    icb_people: Mapping[str, float],
    iterations: int = 100,
) -> dict[str, float]:
    """Trust sizes s so that sum over trusts of s x share(ICB) ~ ICB residents.

    OHID gives where each trust's patients come from, not how many it sees; picking
    trusts uniformly would give a small ICB served by many trusts too many patients.
    Multiplicative (EM / Richardson-Lucy) updates keep sizes positive and converge to
    the Poisson fit in well under 100 rounds.
    """
    size = dict.fromkeys(catchment, 1.0)
    for _ in range(iterations):
        fitted: dict[str, float] = defaultdict(float)
        for trust, shares in catchment.items():
            for icb, share in shares:
                fitted[icb] += size[trust] * share
        for trust, shares in catchment.items():
            total = sum(share for _, share in shares)
            gain = sum(
                share * icb_people.get(icb, 0.0) / fitted[icb]
                for icb, share in shares
                if fitted[icb] > 0
            )
            size[trust] *= gain / total if total > 0 else 0.0
    return size


def parse_mix(text: str) -> dict[str, float]:
    """``"ed_arrival=0.5,admission=0.5"`` -> a mix; unnamed types get 0, then normalised."""
    mix = dict.fromkeys(EVENT_TYPES, 0.0)
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = part.partition("=")
        if not sep or name.strip() not in mix:
            raise ConfigError(
                f"mix entry {part!r}: expected <event_type>=<weight>, "
                f"event types {', '.join(EVENT_TYPES)}"
            )
        try:
            mix[name.strip()] = float(value)
        except ValueError as exc:
            raise ConfigError(f"mix entry {part!r}: weight is not a number") from exc
    return _normalise_mix(mix)


def _normalise_mix(mix: Mapping[str, float]) -> dict[str, float]:
    unknown = set(mix) - set(EVENT_TYPES)
    if unknown:
        raise ConfigError(f"unknown event types in mix: {sorted(unknown)}")
    if any(not math.isfinite(v) or v < 0 for v in mix.values()):
        raise ConfigError("mix weights must be finite and non-negative")
    total = sum(mix.values())
    if total <= 0:
        raise ConfigError("mix weights must not all be zero")
    return {t: mix.get(t, 0.0) / total for t in EVENT_TYPES}


@dataclass(frozen=True, slots=True)
class ScenarioConfig:
    """What to simulate. Everything random follows from ``seed``, so a run is named by
    its seed and config."""

    seed: int = 0
    mix: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_MIX))
    icbs: frozenset[str] = frozenset()
    """ICB ODS codes patients may live in; empty = all of England."""
    emergency_share: float = 0.6
    """Share of admissions that are emergencies (the rest elective)."""
    ethnicity_unknown_share: float = 0.06
    residence_missing_share: float = 0.015
    inequality: float = 1.0
    """Scales every built-in gap: 0 = none, 1 = the tables above, 2 = twice as steep."""


def _cum(weights: list[float] | tuple[float, ...]) -> list[float]:
    out, total = [], 0.0
    for w in weights:
        total += w
        out.append(total)
    return out


def _pick(table: tuple[tuple[Any, float], ...]) -> tuple[list[Any], list[float]]:
    return [v for v, _ in table], _cum([w for _, w in table])


class Scenario:
    """Generates events; ``event`` for live streams, ``backfill`` for history."""

    def __init__(self, data: ScenarioData, config: ScenarioConfig | None = None) -> None:
        self.config = config = config or ScenarioConfig()
        for name in ("emergency_share", "ethnicity_unknown_share", "residence_missing_share"):
            if not 0.0 <= getattr(config, name) <= 1.0:
                raise ConfigError(f"{name} must be between 0 and 1")
        if not 0.0 <= config.inequality <= 3.0:
            raise ConfigError("inequality must be between 0 and 3 (beyond 3 rates go negative)")
        self._rng = Random(config.seed)
        self._mix = _normalise_mix(config.mix)
        self._data = data
        s = config.inequality
        self._icbs = self._check_icbs(data, config.icbs)
        self._type_cum = _cum([self._mix[t] for t in EVENT_TYPES])
        # Trusts weighted by size x the share of their patients living in the chosen ICBs.
        self._trusts: list[tuple[str, list[str], list[float]]] = []
        trust_weights: list[float] = []
        for code, shares in data.trust_catchment.items():
            inside = [(icb, w) for icb, w in shares if icb in self._icbs and w > 0]
            if inside:
                self._trusts.append((code, [i for i, _ in inside], _cum([w for _, w in inside])))
                trust_weights.append(data.trust_size[code] * sum(w for _, w in inside))
        served = {icb for _, icbs, _ in self._trusts for icb in icbs}
        if served != self._icbs:
            raise ConfigError(
                "no trust with catchment data serves ICBs: "
                + ", ".join(sorted(self._icbs - served))
            )
        self._trust_cum = _cum(trust_weights)
        # Per (ICB, class): LSOA indices and cumulative residents x quintile multiplier.
        self._lsoas: dict[tuple[str, str], tuple[list[int], list[float]]] = {}
        for icb in sorted(self._icbs):
            idx = data.lsoas_of_icb[icb]
            for cls in _CLASSES:
                mult = [1 + s * (m - 1) for m in QUINTILE_MULTIPLIER[cls]]
                weights = [data.residents[i] * mult[data.quintile[i] - 1] for i in idx]
                self._lsoas[(icb, cls)] = (idx, _cum(weights))
        self._dna = [DNA_PROBABILITY[2] + s * (p - DNA_PROBABILITY[2]) for p in DNA_PROBABILITY]
        z = NormalDist().inv_cdf
        self._ed_mu = [
            math.log(240) - _ED_MINUTES_SIGMA * z(1 - (0.25 + s * (p - 0.25)))
            for p in BREACH_4H_PROBABILITY
        ]
        self._wait_mu = [_WAIT_MU[2] + s * (m - _WAIT_MU[2]) for m in _WAIT_MU]
        self._ages = {c: self._age_table(_AGE_SHARES[c]) for c in _CLASSES}
        self._ethnic = [_pick(t) for t in _ETHNIC_CODES]
        self._unknown_ethnic = _pick(_UNKNOWN_ETHNICITY)
        self._ed_types = _pick(_ED_TYPES)
        self._methods = {
            "emergency": _pick(_EMERGENCY_METHODS),
            "elective": _pick(_ELECTIVE_METHODS),
        }
        self._cancelled = _pick(_CANCELLED)
        self._attended = _pick(_ATTENDED)
        self._p_cancelled = sum(w for _, w in _CANCELLED)

    @staticmethod
    def _check_icbs(data: ScenarioData, wanted: frozenset[str]) -> set[str]:
        unknown = sorted(wanted - set(data.lsoas_of_icb))
        if unknown:
            raise ConfigError(f"unknown ICB ODS codes: {', '.join(unknown)}")
        return set(wanted or data.lsoas_of_icb)

    @staticmethod
    def _age_table(shares: tuple[float, ...]) -> list[float]:
        per_year: list[float] = []
        for (lo, hi), share in zip(_AGE_BANDS, shares, strict=True):
            per_year.extend([share / (hi - lo + 1)] * (hi - lo + 1))
        return _cum(per_year)

    def event(self, occurred_at_ms: int, event_type: str | None = None) -> Event:
        """One event at ``occurred_at_ms`` (epoch ms, UTC); its type from the mix if None."""
        rnd = self._rng.random
        data = self._data
        if event_type is None:
            event_type = EVENT_TYPES[bisect(self._type_cum, rnd() * self._type_cum[-1])]
        cls = _CLASS_OF_TYPE.get(event_type)
        if cls is None:
            if event_type != "admission":
                raise ValueError(f"unknown event type {event_type!r}")
            cls = "emergency" if rnd() < self.config.emergency_share else "elective"
        trust, icbs, icb_cum = self._trusts[bisect(self._trust_cum, rnd() * self._trust_cum[-1])]
        icb = icbs[bisect(icb_cum, rnd() * icb_cum[-1])]
        idx, cum = self._lsoas[(icb, cls)]
        i = idx[bisect(cum, rnd() * cum[-1])]
        q = data.quintile[i] - 1
        ages = self._ages[cls]
        age: int | None = bisect(ages, rnd() * ages[-1])
        if rnd() < _AGE_MISSING:
            age = None
        u = rnd()
        female = _FEMALE_SHARE[cls]
        if u < female:
            sex = "2"
        elif u < 1 - _SEX_9 - _SEX_X:
            sex = "1"
        elif u < 1 - _SEX_X:
            sex = "9"
        else:
            sex = "X"
        if rnd() < self.config.ethnicity_unknown_share:
            codes, ecum = self._unknown_ethnic
        else:
            group_cum = data.ethnic_cum[i]
            codes, ecum = self._ethnic[bisect(group_cum, rnd() * group_cum[-1])]
        ethnic = codes[bisect(ecum, rnd() * ecum[-1])]
        missing = rnd() < self.config.residence_missing_share
        bits = self._rng.getrandbits(128) & _UUID_CLEAR | _UUID_SET
        h = f"{bits:032x}"
        event: Event = {
            "event_id": f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}",
            "event_type": event_type,
            "occurred_at": occurred_at_ms,
            "provider_code": trust,
            "dataset": DATASET_OF[event_type],
            "person_key": f"{self._rng.getrandbits(256):064x}",
            "age_years": age,
            "sex": sex,
            "ethnic_category": ethnic,
            "lsoa_code": None if missing else data.codes[i],
            "lsoa_vintage": None if missing else "2021",
            "postcode": None,
            "site_code": None,
            "attendance_status": None,
            "admission_method": None,
            "minutes_in_department": None,
            "weeks_waiting": None,
            "ed_department_type": None,
        }
        if cls == "ed":
            codes, ecum = self._ed_types
            event["ed_department_type"] = codes[bisect(ecum, rnd() * ecum[-1])]
            if event_type == "ed_departure":
                minutes = self._rng.lognormvariate(self._ed_mu[q], _ED_MINUTES_SIGMA)
                event["minutes_in_department"] = min(max(int(minutes), 1), 72 * 60)
        elif event_type == "admission":
            codes, ecum = self._methods[cls]
            event["admission_method"] = codes[bisect(ecum, rnd() * ecum[-1])]
        elif cls == "outpatient":
            u = rnd()
            if u < self._p_cancelled:
                codes, ecum = self._cancelled
            elif rnd() < self._dna[q]:
                codes, ecum = ["3"], [1.0]
            else:
                codes, ecum = self._attended
            event["attendance_status"] = codes[bisect(ecum, rnd() * ecum[-1])]
        else:
            weeks = self._rng.lognormvariate(self._wait_mu[q], _WAIT_SIGMA)
            event["weeks_waiting"] = min(int(weeks), 260)
        return event

    def backfill(self, count: int, days: float, end_ms: int) -> Iterator[Event]:
        """``count`` events over ``[end_ms - days, end_ms)`` in time order, following the
        local-time daily and weekly pattern of each event type; the type mix is kept."""
        if count < 0 or days <= 0:
            raise ConfigError("backfill needs count >= 0 and days > 0")
        start_ms = end_ms - round(days * DAY_MS)
        zone = _london()
        slots = []  # (start ms, length ms, weight per event type)
        # Slots end on whole UTC hours, which are whole local hours in Europe/London.
        for s in [start_ms, *range(start_ms - start_ms % HOUR_MS + HOUR_MS, end_ms, HOUR_MS)]:
            length = min(s - s % HOUR_MS + HOUR_MS, end_ms) - s
            local = datetime.fromtimestamp(s / 1000, zone)
            slots.append(
                (s, length, [_time_weight(t, local) * length / HOUR_MS for t in EVENT_TYPES])
            )
        totals = [sum(w[k] for _, _, w in slots) or 1.0 for k in range(len(EVENT_TYPES))]
        mix = [self._mix[t] / totals[k] for k, t in enumerate(EVENT_TYPES)]
        slot_weights = [[m * x for m, x in zip(mix, w, strict=True)] for _, _, w in slots]
        grand = sum(sum(w) for w in slot_weights)
        done, running = 0, 0.0
        for (s, length, _), weights in zip(slots, slot_weights, strict=True):
            running += sum(weights)
            n = round(count * running / grand) - done
            done += n
            type_cum = _cum(weights)
            times = sorted(s + int(self._rng.random() * length) for _ in range(n))
            for t in times:
                kind = EVENT_TYPES[bisect(type_cum, self._rng.random() * type_cum[-1])]
                yield self.event(t, kind)


def _time_weight(event_type: str, local: datetime) -> float:
    urgent, lag = _TIME_SHAPE[event_type]
    planned = _PLANNED_BY_HOUR[local.hour] * (_PLANNED_WEEKEND if local.weekday() >= 5 else 1)
    return urgent * _URGENT_BY_HOUR[(local.hour - lag) % 24] + (1 - urgent) * planned


def _london() -> tzinfo:
    try:
        return ZoneInfo("Europe/London")
    except ZoneInfoNotFoundError:
        logger.warning("time zone Europe/London unavailable; backfill pattern uses UTC hours")
        return UTC
