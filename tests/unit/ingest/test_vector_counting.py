"""The numpy accumulator must give exactly what the core's reference accumulator gives."""

from hypothesis import given, settings
from hypothesis import strategies as st

from gapwatch.core.counting import CountAccumulator, with_england
from gapwatch.core.demographics import ESP_BANDS, UNKNOWN
from gapwatch.core.enrich import Profile
from gapwatch.core.indicators import BREAKDOWNS
from gapwatch.core.measures import MEASURES
from gapwatch.core.windows import DAY_MS, HOUR_MS
from gapwatch.ingest.vector_counting import VectorAccumulator

NOW = 20_000 * DAY_MS + 7 * HOUR_MS
CUTOFF = NOW - 2 * DAY_MS
EVENT_MEASURES = sorted(set(MEASURES) - {"events", "ethnicity_unknown", "residence_unknown"})

profiles = st.builds(
    Profile,
    icb=st.sampled_from(["QOP", "QHL", "QYG", "unknown"]),
    imd_quintile=st.sampled_from(BREAKDOWNS["imd_quintile"]),
    imd_decile=st.sampled_from(BREAKDOWNS["imd_decile"]),
    ethnic_group=st.sampled_from(BREAKDOWNS["ethnic_group"]),
    age_band=st.sampled_from(BREAKDOWNS["age_band"]),
    sex=st.sampled_from(BREAKDOWNS["sex"]),
    quality=st.just(()),
    esp_band=st.sampled_from((*ESP_BANDS, UNKNOWN)),
    lsoa=st.sampled_from(["", "E01000101", "E01000102", "E01033999"]),
)
events = st.lists(
    st.tuples(
        st.integers(NOW - 5 * DAY_MS, NOW),
        profiles,
        st.lists(st.sampled_from(EVENT_MEASURES), max_size=3, unique=True).map(tuple),
    ),
    max_size=60,
)


@settings(max_examples=200, deadline=None)
@given(events)
def test_vector_and_reference_accumulators_agree(batch):
    reference = CountAccumulator.empty(CUTOFF)
    vector = VectorAccumulator(CUTOFF)
    for occurred, profile, measures in batch:
        reference.add(occurred, profile, measures)
        vector.add(occurred, profile, measures)
    expected = {k: dict(v) for k, v in with_england(reference.deltas()).items()}
    assert {k: dict(v) for k, v in with_england(vector.deltas()).items()} == expected
    assert vector.events == reference.events == len(batch)


def test_an_empty_chunk_has_no_deltas():
    assert VectorAccumulator(CUTOFF).deltas() == {}


def test_large_counts_agree_on_a_seeded_chunk():
    """Thousands of events on few profiles, so cells hold large counts."""
    import random

    rng = random.Random(7)
    reference = CountAccumulator.empty(CUTOFF)
    vector = VectorAccumulator(CUTOFF)
    for _ in range(5000):
        profile = Profile(
            rng.choice(["QOP", "QHL"]),
            rng.choice("12"),
            rng.choice("34"),
            rng.choice(["white", "unknown"]),
            "18-39",
            rng.choice(["male", "female"]),
            (),
            rng.choice(["40-44", "unknown"]),
            rng.choice(["", "E01000101", "E01000102"]),
        )
        measures = tuple(rng.sample(EVENT_MEASURES, rng.randint(0, 2)))
        occurred = NOW - rng.randrange(3 * DAY_MS)
        reference.add(occurred, profile, measures)
        vector.add(occurred, profile, measures)
    expected = {k: dict(v) for k, v in reference.deltas().items()}
    got = {k: dict(v) for k, v in vector.deltas().items()}
    assert got == expected
    assert max(max(v.values()) for v in got.values()) > 100
    assert any("|esp|" in name for v in got.values() for name in v)
    assert any("|lsoa|" in name for v in got.values() for name in v)


def test_many_lsoas_in_one_chunk_agree():
    """More LSOAs than any bit field could hold, across ICBs and days."""
    import random

    rng = random.Random(11)
    reference = CountAccumulator.empty(CUTOFF)
    vector = VectorAccumulator(CUTOFF)
    for i in range(20_000):
        code = f"E01{rng.randrange(40_000):06d}"
        profile = Profile(f"Q{i % 43:02d}", "1", "2", "white", "18-39", "male", (), "40-44", code)
        measures = rng.choice([("ed_arrival",), ("admission", "admission_emergency"), ()])
        occurred = NOW - rng.randrange(3 * DAY_MS)
        reference.add(occurred, profile, measures)
        vector.add(occurred, profile, measures)
    expected = {k: dict(v) for k, v in reference.deltas().items()}
    assert {k: dict(v) for k, v in vector.deltas().items()} == expected
