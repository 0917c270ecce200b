"""Stable history raises no more alerts than the SPC rules themselves imply.

90 days of seeded, stable counts for every ICB (real populations), for three indicators
(two rates and a proportion) by IMD quintile and by ethnic group, run through the same
book and evaluator the alerter runs: each series is charted over its 90 closed days and
its latest point judged, as when the alerter sees a day close. The count that fires must
not exceed what the rules give on stable noise (``tests/reference/false_alarm.py``, 90
points) beyond chance. Series of one ICB share counts (the ethnic comparisons share the
reference group; difference, ratio and SII share the quintiles), so the bound is loose
on purpose: 99.9% for independent judgements.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence

import numpy as np

from gapwatch.alerting.evaluator import ChartPlan, evaluate_icb
from gapwatch.alerting.gap_book import GapBook
from gapwatch.core.demographics import ETHNIC_GROUPS, UNKNOWN
from gapwatch.core.period_gaps import GAP_FIELDS, series_ids
from gapwatch.core.refdata import ReferenceData
from gapwatch.core.spc import SpcOptions
from gapwatch.core.windows import DAY_MS, HOUR_MS
from gapwatch.settings import AlertSettings

DAYS = 90
WINDOW = 90
SLIDES = 1
TODAY = 20_400 * DAY_MS
SEED = 20261127
INDICATORS = ("emergency_admission_rate", "ed_attendance_rate", "outpatient_dna_proportion")
PER_PERSON_PER_DAY = {"admission_emergency": 0.1 / 365.25, "ed_arrival": 0.4 / 365.25}
OUTCOMES_PER_PERSON_PER_DAY = 1.5 / 365.25
DNA = 0.08
DECILE_MULTIPLIER = (1.7, 1.6, 1.4, 1.3, 1.15, 1.1, 1.0, 0.95, 0.85, 0.8)
"""A real, constant gradient: stable does not mean equal."""


def _history(ref: ReferenceData) -> dict[tuple[str, int], list[int]]:
    rng = np.random.default_rng(SEED)
    index = {f: i for i, f in enumerate(GAP_FIELDS)}
    out: dict[tuple[str, int], list[int]] = {}
    pop = ref.population
    for icb in sorted(ref.icbs):
        groups: list[tuple[str, float, float]] = [
            ("imd_decile|" + str(d), pop.people([icb], "imd_decile", str(d)) or 0.0, m)
            for d, m in zip(range(1, 11), DECILE_MULTIPLIER, strict=True)
        ]
        groups += [
            ("ethnic_group|" + g, pop.people([icb], "ethnic_group", g) or 0.0, 1.0)
            for g in ETHNIC_GROUPS
            if g != UNKNOWN
        ]
        for day in range(DAYS):
            row = [0] * len(GAP_FIELDS)
            for suffix, people, multiplier in groups:
                for measure, rate in PER_PERSON_PER_DAY.items():
                    row[index[f"{measure}|{suffix}"]] = int(rng.poisson(people * rate * multiplier))
                outcomes = int(rng.poisson(people * OUTCOMES_PER_PERSON_PER_DAY))
                row[index[f"outpatient_outcome|{suffix}"]] = outcomes
                row[index[f"outpatient_dna|{suffix}"]] = int(
                    rng.binomial(outcomes, min(DNA * multiplier, 0.5))
                )
            out[(icb, TODAY - (DAYS - day) * DAY_MS)] = row
    return out


def _alert_share(ref: ReferenceData) -> tuple[int, int]:
    history = _history(ref)

    async def read(keys: Sequence[tuple[str, int]], fields: Sequence[str]) -> list[list[int]]:
        assert tuple(fields) == GAP_FIELDS
        return [history[k] for k in keys]

    book = GapBook(ref, "white", AlertSettings().min_events)
    versions = dict.fromkeys(history, "v1")
    asyncio.run(book.refresh(versions, read, 0))
    series = series_ids(INDICATORS, ("imd_quintile", "ethnic_group"), "white")
    fired = judged = 0
    for slide in range(SLIDES):
        # "now" is 10:00 on the day after the latest closed day of this slide.
        now = TODAY - (SLIDES - 1 - slide) * DAY_MS + 10 * HOUR_MS
        plan = ChartPlan.at(now, series, "day", HOUR_MS, WINDOW, SpcOptions())
        for icb in sorted(ref.icbs):
            _, events, charted = evaluate_icb(book, icb, icb, plan, {}, now)
            fired += len(events)
            judged += charted
    return fired, judged


def test_stable_history_fires_no_more_than_the_rules_imply(real_ref: ReferenceData) -> None:
    from tests.reference.false_alarm import concerning_false_alarm_rate

    fired, judged = _alert_share(real_ref)
    implied = concerning_false_alarm_rate(20_000, WINDOW, SEED, "normal").rate
    # Binomial upper bound at 99.9% on the count the rules imply for this many judgements.
    expected = implied * judged
    bound = expected + 3.1 * math.sqrt(expected * (1 - implied))
    print(
        f"\nfalse alarms: {fired} of {judged} latest points ({fired / judged:.2%}); "
        f"the rules imply {implied:.2%} on stable noise ({expected:.0f}, 99.9% bound {bound:.0f})"
    )
    assert judged >= 42 * 3 * 11 * 0.9
    assert fired <= bound
