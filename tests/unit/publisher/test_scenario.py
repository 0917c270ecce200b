"""The synthetic scenario over the real reference data: reproducible, valid, placed in
real areas, and carrying the built-in deprivation gradient the pipeline must find."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from gapwatch.adapters.avro_codec import AvroCodec
from gapwatch.adapters.refdata_files import load_reference_data
from gapwatch.core.enrich import enrich
from gapwatch.core.errors import ConfigError
from gapwatch.core.measures import measures_for
from gapwatch.core.refdata import ReferenceData
from gapwatch.core.validation import Limits, validate
from gapwatch.core.windows import DAY_MS
from gapwatch.publisher.mix import DEFAULT_MIX, EVENT_TYPES, parse_mix
from gapwatch.publisher.scenario import Scenario, ScenarioConfig
from gapwatch.publisher.world import ScenarioData, load_scenario_data

NOW_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
LIMITS = Limits(retention_ms=400 * DAY_MS, future_skew_ms=900_000)
GM = frozenset({"QOP"})  # Greater Manchester: large, with every IMD quintile well populated
TWO_ICBS = frozenset({"QOP", "QWO"})  # plus West Yorkshire


# ``real_refdata_dir`` and ``codec`` come from tests/conftest.py. The first skips when
# ../shared/data is absent, and fails in CI, so a missing directory never passes a build.
@pytest.fixture(scope="module")
def data(real_refdata_dir: Path) -> ScenarioData:
    return load_scenario_data(real_refdata_dir)


@pytest.fixture(scope="module")
def ref(real_refdata_dir: Path) -> ReferenceData:
    return load_reference_data(real_refdata_dir)


@pytest.fixture(scope="module")
def gm_events(data: ScenarioData) -> list[dict[str, Any]]:
    scenario = Scenario(data, ScenarioConfig(seed=2024, icbs=GM))
    return [scenario.event(NOW_MS) for _ in range(50_000)]


def _events(data: ScenarioData, n: int, **config: Any) -> list[dict[str, Any]]:
    scenario = Scenario(data, ScenarioConfig(**config))
    return [scenario.event(NOW_MS) for _ in range(n)]


def test_same_seed_gives_identical_events(data: ScenarioData) -> None:
    assert _events(data, 3000, seed=7) == _events(data, 3000, seed=7)
    a = list(Scenario(data, ScenarioConfig(seed=7)).backfill(3000, 3, NOW_MS))
    b = list(Scenario(data, ScenarioConfig(seed=7)).backfill(3000, 3, NOW_MS))
    assert a == b


def test_different_seeds_give_different_events(data: ScenarioData) -> None:
    a, b = _events(data, 500, seed=1), _events(data, 500, seed=2)
    assert {e["event_id"] for e in a}.isdisjoint(e["event_id"] for e in b)
    assert [e["lsoa_code"] for e in a] != [e["lsoa_code"] for e in b]


def test_event_ids_are_unique_version_4_uuids(data: ScenarioData) -> None:
    events = _events(data, 5000, seed=3)
    ids = [e["event_id"] for e in events]
    assert len(set(ids)) == len(ids)
    for text in ids[:500]:
        parsed = uuid.UUID(text)
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122
        assert str(parsed) == text
    assert all(len(e["person_key"]) == 64 for e in events)
    int(events[0]["person_key"], 16)


def test_every_event_encodes_round_trips_and_passes_validation(
    data: ScenarioData, codec: AvroCodec
) -> None:
    scenario = Scenario(data, ScenarioConfig(seed=5))
    events = list(scenario.backfill(6000, 7, NOW_MS)) + [
        scenario.event(NOW_MS) for _ in range(6000)
    ]
    assert {e["event_type"] for e in events} == set(EVENT_TYPES)
    for event in events:
        assert codec.decode(codec.encode_event(event)).events == [event]
        assert validate(event, NOW_MS, LIMITS) is None
    batch: list[Mapping[str, Any]] = list(events[:500])
    assert codec.decode(codec.encode_batch(batch, "b")).events == batch


def test_events_live_in_real_lsoas_of_the_requested_icbs(
    data: ScenarioData, ref: ReferenceData
) -> None:
    events = _events(data, 20_000, seed=9, icbs=TWO_ICBS)
    placed = [e for e in events if e["lsoa_code"] is not None]
    for event in placed:
        area = ref.areas[event["lsoa_code"]]
        assert area.lsoa21 == event["lsoa_code"] and area.icb in TWO_ICBS
        assert event["lsoa_vintage"] == "2021"
    assert {ref.areas[e["lsoa_code"]].icb for e in placed} == TWO_ICBS
    assert 0.005 < 1 - len(placed) / len(events) < 0.03  # a little missing residence
    for provider in {e["provider_code"] for e in events}:
        assert {icb for icb, _ in ref.trusts[provider].catchment} & TWO_ICBS


def test_patients_follow_resident_population_between_icbs(
    data: ScenarioData, ref: ReferenceData
) -> None:
    icbs = frozenset({"QOP", "QHM"})  # ~2.9M vs ~1.0M residents
    placed = [e for e in _events(data, 20_000, seed=4, icbs=icbs) if e["lsoa_code"]]
    share = sum(ref.areas[e["lsoa_code"]].icb == "QOP" for e in placed) / len(placed)
    people = {i: sum(data.residents[k] for k in data.lsoas_of_icb[i]) for i in icbs}
    assert share == pytest.approx(people["QOP"] / sum(people.values()), abs=0.03)


def _by_quintile(events: list[dict[str, Any]], ref: ReferenceData) -> dict[str, Counter[str]]:
    out: dict[str, Counter[str]] = {}
    for event in events:
        profile = enrich(event, ref)
        counts = out.setdefault(profile.imd_quintile, Counter())
        counts[str(event["event_type"])] += 1
        counts.update(measures_for(event, event["age_years"]))
    return out


def test_more_deprived_areas_have_higher_ed_rates_and_more_dna(
    gm_events: list[dict[str, Any]], ref: ReferenceData
) -> None:
    counts = _by_quintile(gm_events, ref)

    def rate(q: str, measure: str) -> float:
        people = ref.population.people(GM, "imd_quintile", q)
        assert people
        return counts[q][measure] / people

    assert rate("1", "ed_arrival") > 1.4 * rate("5", "ed_arrival")
    assert rate("1", "admission_emergency") > 1.4 * rate("5", "admission_emergency")
    dna = {q: counts[q]["outpatient_dna"] / counts[q]["outpatient_outcome"] for q in "15"}
    assert dna["1"] > dna["5"] + 0.04
    breach = {q: counts[q]["ed_breach_4h"] / counts[q]["ed_departure_timed"] for q in "15"}
    assert breach["1"] > breach["5"]


def test_no_built_in_gap_when_inequality_is_zero(data: ScenarioData, ref: ReferenceData) -> None:
    counts = _by_quintile(_events(data, 50_000, seed=2024, icbs=GM, inequality=0.0), ref)
    rates = {
        q: counts[q]["ed_arrival"] / (ref.population.people(GM, "imd_quintile", q) or 1)
        for q in "15"
    }
    assert 0.8 < rates["1"] / rates["5"] < 1.25


def test_type_mix_is_kept_live_and_in_backfill(
    data: ScenarioData, gm_events: list[dict[str, Any]]
) -> None:
    backfill = list(Scenario(data, ScenarioConfig(seed=8, icbs=GM)).backfill(30_000, 14, NOW_MS))
    for events in (gm_events, backfill):
        counts = Counter(e["event_type"] for e in events)
        for event_type, share in DEFAULT_MIX.items():
            assert counts[event_type] / len(events) == pytest.approx(share, abs=0.01)


def test_custom_mix_and_admission_methods(data: ScenarioData) -> None:
    events = _events(data, 10_000, seed=6, mix=parse_mix("admission=1"))
    assert {e["event_type"] for e in events} == {"admission"}
    emergency = sum(measures_for(e, None).count("admission_emergency") for e in events)
    assert emergency / len(events) == pytest.approx(0.6, abs=0.02)
    assert all(e["dataset"] == "APC" and e["admission_method"] for e in events)


def test_backfill_is_time_ordered_inside_the_window_with_a_daily_pattern(
    data: ScenarioData,
) -> None:
    events = list(Scenario(data, ScenarioConfig(seed=3)).backfill(20_000, 7, NOW_MS))
    times = [e["occurred_at"] for e in events]
    assert len(events) == 20_000
    assert times == sorted(times)
    assert NOW_MS - 7 * DAY_MS <= times[0] and times[-1] < NOW_MS
    # Winter: UTC = London time. Clinics run in the day, not at 3 a.m.
    hours = Counter(
        (e["occurred_at"] // 3_600_000) % 24
        for e in events
        if e["event_type"] == "outpatient_appointment"
    )
    assert hours[10] > 20 * max(hours[3], 1)


def test_demographic_mixes_look_like_nhs_data(gm_events: list[dict[str, Any]]) -> None:
    n = len(gm_events)
    unknown_ethnicity = sum(e["ethnic_category"] in ("Z", "99", None) for e in gm_events)
    assert 0.05 < unknown_ethnicity / n < 0.07
    sexes = Counter(e["sex"] for e in gm_events)
    assert set(sexes) == {"1", "2", "9", "X"}
    assert 0.003 < (sexes["9"] + sexes["X"]) / n < 0.015
    ed_ages = [e["age_years"] for e in gm_events if e["event_type"] == "ed_arrival"]
    apc_ages = [
        e["age_years"]
        for e in gm_events
        if e["event_type"] == "admission" and e["admission_method"].startswith("2")
    ]
    assert sum(a is not None and a >= 80 for a in apc_ages) / len(apc_ages) > 2 * (
        sum(a is not None and a >= 80 for a in ed_ages) / len(ed_ages)
    )
    departures = [
        e["minutes_in_department"] for e in gm_events if e["event_type"] == "ed_departure"
    ]
    assert 0.20 < sum(m > 240 for m in departures) / len(departures) < 0.32


def test_ethnic_category_follows_the_census_mix_of_the_lsoa(data: ScenarioData) -> None:
    asian_codes = set("HJKL") | {"R"}
    icb = "QOP"
    idx = data.lsoas_of_icb[icb]
    census_asian = sum(data.ethnic_cum[i][2] - data.ethnic_cum[i][1] for i in idx) / sum(
        data.ethnic_cum[i][-1] for i in idx
    )
    events = _events(
        data, 20_000, seed=12, icbs=frozenset({icb}), mix=parse_mix("waiting_list_snapshot=1")
    )
    observed = sum(e["ethnic_category"] in asian_codes for e in events) / len(events)
    assert observed == pytest.approx(census_asian * 0.94, abs=0.015)


def test_bad_configuration_is_refused(data: ScenarioData) -> None:
    with pytest.raises(ConfigError, match="unknown ICB"):
        Scenario(data, ScenarioConfig(icbs=frozenset({"QXX"})))
    with pytest.raises(ConfigError):
        Scenario(data, ScenarioConfig(inequality=5))
    with pytest.raises(ConfigError):
        parse_mix("ed_arrival=1,teleport=2")
    with pytest.raises(ConfigError):
        parse_mix("ed_arrival=-1,admission=2")
    with pytest.raises(ConfigError):
        parse_mix("ed_arrival=0")
    assert parse_mix("ed_arrival=3,admission=1")["ed_arrival"] == 0.75


def test_generation_is_fast(data: ScenarioData) -> None:
    """Bench runs need >= 100k events/s; the floor here is loose so a busy CI box
    passes, but a 5x regression does not."""
    scenario = Scenario(data, ScenarioConfig(seed=1))
    started = time.perf_counter()
    for _ in range(50_000):
        scenario.event(NOW_MS)
    per_second = 50_000 / (time.perf_counter() - started)
    assert per_second > 25_000, f"{per_second:,.0f} events/s"
