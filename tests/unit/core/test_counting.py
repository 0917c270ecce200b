from gapwatch.core.counting import (
    ENGLAND,
    LSOA_DAY,
    CountAccumulator,
    esp_counts,
    read_count,
    total_of,
    with_england,
)
from gapwatch.core.enrich import Profile
from gapwatch.core.windows import DAY_MS, HOUR_MS

D0 = 20_000 * DAY_MS
P = Profile("QOP", "1", "2", "white", "18-39", "female", ())


def test_each_event_adds_one_per_measure_under_every_breakdown():
    acc = CountAccumulator.empty(hour_cutoff_ms=D0)
    acc.add(D0 + 5 * HOUR_MS + 10, P, ("ed_arrival",))
    acc.add(D0 + 5 * HOUR_MS + 20, P, ("ed_arrival",))
    deltas = acc.deltas()
    assert set(deltas) == {("d", D0, "QOP"), ("h", D0 + 5 * HOUR_MS, "QOP")}
    day = deltas[("d", D0, "QOP")]
    assert day["ed_arrival|imd_decile|2"] == 2
    assert "ed_arrival|imd_quintile|1" not in day  # derived from deciles on read
    assert day["ed_arrival|ethnic_group|white"] == 2
    assert day["ed_arrival|age_band|18-39"] == 2
    assert day["ed_arrival|sex|female"] == 2
    assert day["events|sex|female"] == 2
    # The hour bucket holds the same, except the ESP2013 cross (day buckets only).
    hour = deltas[("h", D0 + 5 * HOUR_MS, "QOP")]
    assert hour == {k: n for k, n in day.items() if "|esp|" not in k}
    assert day["ed_arrival|esp|1/female/unknown"] == 2


def test_unknown_groups_add_data_quality_measures():
    acc = CountAccumulator.empty(hour_cutoff_ms=D0)
    unknown = Profile("QOP", "unknown", "unknown", "unknown", "18-39", "male", ("x",))
    acc.add(D0, unknown, ())
    day = acc.deltas()[("d", D0, "QOP")]
    assert day["ethnicity_unknown|imd_decile|unknown"] == 1
    assert day["residence_unknown|sex|male"] == 1


def test_old_events_go_to_day_buckets_only():
    acc = CountAccumulator.empty(hour_cutoff_ms=D0 + 3 * DAY_MS)
    acc.add(D0 + HOUR_MS, P, ())
    assert set(acc.deltas()) == {("d", D0, "QOP")}


def test_totals_are_sums_over_one_breakdown():
    acc = CountAccumulator.empty(hour_cutoff_ms=D0)
    acc.add(D0, P, ("ed_arrival",))
    acc.add(D0, Profile("QOP", "5", "9", "asian", "80+", "male", ()), ("ed_arrival",))
    day = acc.deltas()[("d", D0, "QOP")]
    assert total_of(day, "ed_arrival") == 2
    assert total_of(day, "events") == 2
    assert total_of(day, "outpatient_dna") == 0
    assert sum(v for k, v in day.items() if k.startswith("ed_arrival|imd_decile|")) == 2
    assert read_count(day, "ed_arrival", "imd_quintile", "1") == 1
    assert read_count(day, "ed_arrival", "imd_quintile", "5") == 1
    assert read_count(day, "ed_arrival", "total", "all") == 2


def test_rate_numerators_are_counted_by_decile_sex_and_esp_band():
    acc = CountAccumulator.empty(D0)
    old = Profile("QOP", "1", "2", "white", "80+", "female", (), "90+")
    young = Profile("QOP", "3", "5", "white", "18-39", "male", (), "20-24")
    acc.add(D0, old, ("ed_arrival",))
    acc.add(D0, young, ("ed_arrival",))
    acc.add(D0, young, ("outpatient_dna",))  # not a rate numerator: no ESP field
    (day,) = [c for k, c in acc.deltas().items() if k[0] == "d"]
    assert esp_counts(day, "ed_arrival", "total", "all") == {"90+": 1, "20-24": 1}
    assert esp_counts(day, "ed_arrival", "imd_quintile", "1") == {"90+": 1}
    assert esp_counts(day, "ed_arrival", "imd_quintile", "3") == {"20-24": 1}
    assert esp_counts(day, "ed_arrival", "sex", "female") == {"90+": 1}
    assert esp_counts(day, "outpatient_dna", "total", "all") == {}


def test_england_buckets_are_the_sum_of_the_icb_buckets():
    acc = CountAccumulator.empty(D0)
    acc.add(D0, P, ("ed_arrival",))
    acc.add(D0, Profile("QHL", "5", "9", "asian", "80+", "male", ()), ("ed_arrival",))
    acc.add(D0, Profile("unknown", "unknown", "unknown", "white", "80+", "male", ()), ())
    deltas = with_england(acc.deltas())
    england = deltas[("d", D0, ENGLAND)]
    assert england["ed_arrival|sex|female"] == 1
    assert england["ed_arrival|sex|male"] == 1
    assert total_of(england, "events") == 2  # the event with no ICB is not England's


def test_rate_numerators_are_counted_per_lsoa_in_their_own_day_buckets():
    acc = CountAccumulator.empty(hour_cutoff_ms=D0)
    here = Profile("QOP", "1", "2", "white", "5-17", "female", (), "10-14", "E01000101")
    acc.add(D0 + HOUR_MS, here, ("ed_arrival",))
    acc.add(D0 + 2 * HOUR_MS, here, ("admission", "admission_emergency", "admission_emergency_u18"))
    acc.add(D0 + 3 * HOUR_MS, here, ("outpatient_outcome",))
    acc.add(D0 + 3 * HOUR_MS, P, ("ed_arrival",))  # residence not resolved: no LSOA field
    deltas = with_england(acc.deltas())
    assert deltas[(LSOA_DAY, D0, "QOP")] == {
        "ed_arrival|lsoa|E01000101": 1,
        "admission_emergency|lsoa|E01000101": 1,
        "admission_emergency_u18|lsoa|E01000101": 1,
    }
    assert not any("|lsoa|" in k for key, v in deltas.items() if key[0] != LSOA_DAY for k in v)
    # England gets every other bucket, but no per-LSOA one.
    assert deltas[("d", D0, ENGLAND)] == deltas[("d", D0, "QOP")]
    assert (LSOA_DAY, D0, ENGLAND) not in deltas
