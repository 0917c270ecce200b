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

The reference data the draws come from is built in ``world``; the event types and mix
in ``mix``; when backfilled events happen in ``timeline``; the ``widening_gap`` scenario
(one ICB's most deprived quintile getting worse day by day) in ``widening``.
"""

from __future__ import annotations

import math
from bisect import bisect
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from random import Random
from statistics import NormalDist
from typing import Any, Final

from gapwatch.core.errors import ConfigError
from gapwatch.publisher.mix import DATASET_OF, DEFAULT_MIX, EVENT_TYPES, normalise_mix
from gapwatch.publisher.timeline import backfill_slots
from gapwatch.publisher.widening import Widening
from gapwatch.publisher.world import ScenarioData

__all__ = ["ACTIVITY_CLASSES", "Scenario", "ScenarioConfig"]

Event = dict[str, Any]
"""One EncounterEvent as the Avro codec takes it (schemas/gapwatch.events.EncounterEvent)."""


# Activity classes: the unit at which deprivation and age shape who turns up.
_CLASS_OF_TYPE: Final = {
    "ed_arrival": "ed",
    "ed_departure": "ed",
    "outpatient_appointment": "outpatient",
    "waiting_list_snapshot": "waiting",
}  # admission is "emergency" or "elective", decided per event.
ACTIVITY_CLASSES: Final = ("ed", "emergency", "elective", "outpatient", "waiting")
_CLASSES: Final = ACTIVITY_CLASSES

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
# Rows follow world._ETHNIC_COLUMNS: White, Mixed, Asian, Black, Other.
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
# fmt: on

# Version 4, variant 10xx: the same bits uuid.UUID(int=..., version=4) sets, without
# building a UUID object (that took a third of the per-event time).
_UUID_CLEAR: Final = ~((0xF000 << 64) | (0xC000 << 48)) & ((1 << 128) - 1)
_UUID_SET: Final = (0x4000 << 64) | (0x8000 << 48)


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
    widening: Widening | None = None
    """The ``widening_gap`` scenario: extra quintile 1 patients in one ICB from a day on;
    None = the stable scenario."""


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
        self._mix = normalise_mix(config.mix)
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
        self._widening = config.widening
        self._widened = bytearray(len(data.codes))
        """1 at the LSOA indices whose residents the widening affects."""
        self._q1_lsoas: dict[str, tuple[list[int], list[float]]] = {}
        if config.widening is not None:
            self._set_up_widening(config.widening)

    def _set_up_widening(self, widening: Widening) -> None:
        data = self._data
        self._check_icbs(data, frozenset({widening.icb}))
        if widening.icb not in self._icbs:
            raise ConfigError(
                f"the widening ICB {widening.icb} is not among the chosen ICBs "
                f"({', '.join(sorted(self._icbs))})"
            )
        unknown = sorted(widening.activities - set(_CLASSES))
        if unknown:
            raise ConfigError(
                f"unknown activity classes {', '.join(unknown)}: expected {', '.join(_CLASSES)}"
            )
        q1 = [i for i in data.lsoas_of_icb[widening.icb] if data.quintile[i] == 1]
        if not q1:
            raise ConfigError(f"ICB {widening.icb} has no IMD quintile 1 LSOA to widen")
        for i in q1:
            self._widened[i] = 1
        # Within one ICB and quintile the multiplier is constant: residents alone weight it.
        cum = _cum([data.residents[i] for i in q1])
        self._q1_lsoas = {cls: (q1, cum) for cls in widening.activities}

    @staticmethod
    def _check_icbs(data: ScenarioData, wanted: frozenset[str]) -> set[str]:
        unknown = sorted(wanted - set(data.lsoas_of_icb))
        if unknown:
            known = sorted(data.lsoas_of_icb)
            raise ConfigError(
                f"unknown ICB ODS codes: {', '.join(unknown)} (an ICB ODS code looks like "
                f"QOP, NHS Greater Manchester; the {len(known)} known: {', '.join(known)})"
            )
        return set(wanted or data.lsoas_of_icb)

    @staticmethod
    def _age_table(shares: tuple[float, ...]) -> list[float]:
        per_year: list[float] = []
        for (lo, hi), share in zip(_AGE_BANDS, shares, strict=True):
            per_year.extend([share / (hi - lo + 1)] * (hi - lo + 1))
        return _cum(per_year)

    def event(self, occurred_at_ms: int, event_type: str | None = None) -> Event:
        """One event at ``occurred_at_ms`` (epoch ms, UTC); its type from the mix if None.

        The stable scenario only: ``draw`` also gives a widening's extra patients. The
        placement is ``_place`` inlined: the call and tuple cost 3% of the bench rate."""
        rnd = self._rng.random
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
        return self._fill(occurred_at_ms, event_type, cls, trust, idx[bisect(cum, rnd() * cum[-1])])

    def draw(self, occurred_at_ms: int, event_type: str | None = None) -> list[Event]:
        """``event``, plus under a widening the extra quintile 1 patients it brings: one
        event drawn as in the stable scenario and, when it lands in a widened LSOA and
        activity, ``factor - 1`` more on average (whole part always, fraction by chance)
        with the same type, class, trust and time, in the ICB's quintile 1 LSOAs.

        Conditional on (ICB, quintile 1, class) the stable draw already has the right
        trust and timing, so the copies share them and Q1's expected count becomes
        ``factor`` x stable while every other group keeps its stable draws exactly."""
        event_type, cls, trust, i = self._place(event_type)
        first = self._fill(occurred_at_ms, event_type, cls, trust, i)
        widening = self._widening
        if widening is None or not self._widened[i] or cls not in self._q1_lsoas:
            return [first]
        extra = widening.factor(occurred_at_ms) - 1.0
        if extra <= 0.0:
            return [first]
        copies = int(extra) + (self._rng.random() < extra - int(extra))
        idx, cum = self._q1_lsoas[cls]
        out = [first]
        for _ in range(copies):
            j = idx[bisect(cum, self._rng.random() * cum[-1])]
            out.append(self._fill(occurred_at_ms, event_type, cls, trust, j))
        return out

    def _place(self, event_type: str | None) -> tuple[str, str, str, int]:
        """Type, activity class, trust and LSOA index of the next event (as ``event``)."""
        rnd = self._rng.random
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
        return event_type, cls, trust, idx[bisect(cum, rnd() * cum[-1])]

    def _fill(self, occurred_at_ms: int, event_type: str, cls: str, trust: str, i: int) -> Event:
        """The event of a patient living in LSOA ``i``: who they are and what happened."""
        rnd = self._rng.random
        data = self._data
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

    def backfill(
        self, count: int, days: float, end_ms: int, *, newest_first: bool = False
    ) -> Iterator[Event]:
        """``count`` events over ``[end_ms - days, end_ms)`` in time order, following the
        local-time daily and weekly pattern of each event type; the type mix is kept.

        A widening's extra patients come on top of ``count``. ``newest_first`` sends the
        latest hours first, so a dashboard fed by a long backfill shows today's numbers
        within seconds (same events per slot, different draws)."""
        slots = backfill_slots(count, days, end_ms, self._mix)
        widened = self._widening is not None
        for slot in reversed(slots) if newest_first else slots:
            type_cum = _cum(slot.weights)
            times = sorted(
                (
                    slot.start_ms + int(self._rng.random() * slot.length_ms)
                    for _ in range(slot.events)
                ),
                reverse=newest_first,
            )
            for t in times:
                kind = EVENT_TYPES[bisect(type_cum, self._rng.random() * type_cum[-1])]
                if widened:
                    yield from self.draw(t, kind)
                else:
                    yield self.event(t, kind)
