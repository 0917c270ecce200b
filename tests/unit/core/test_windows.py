import pytest

from gapwatch.core.windows import (
    DAY_MS,
    HOUR_MS,
    Bucket,
    Window,
    aligned_window,
    bucket_start,
    decompose,
    parse_duration,
    plan,
    rolling_window,
)

D0 = 20_000 * DAY_MS  # a day boundary


@pytest.mark.parametrize(
    ("text", "ms"), [("1h", HOUR_MS), ("24h", DAY_MS), ("7d", 7 * DAY_MS), ("28d", 28 * DAY_MS)]
)
def test_durations_parse_to_milliseconds(text, ms):
    assert parse_duration(text) == ms


@pytest.mark.parametrize("text", ["", "0h", "5m", "1w", "h", "-1d", "24 h", "12345d"])
def test_bad_durations_are_rejected_with_a_message(text):
    with pytest.raises(ValueError, match="window"):
        parse_duration(text)


def test_bucket_start_is_epoch_aligned():
    assert bucket_start(D0 + 5 * HOUR_MS + 123, HOUR_MS) == D0 + 5 * HOUR_MS
    assert bucket_start(D0 + 5 * HOUR_MS + 123, DAY_MS) == D0


def test_rolling_window_ends_at_the_end_of_the_current_hour():
    now = D0 + 10 * HOUR_MS + 15 * 60_000
    assert rolling_window(now, DAY_MS) == Window(D0 - 13 * HOUR_MS, D0 + 11 * HOUR_MS)


def test_decompose_uses_hours_at_the_edges_and_days_inside():
    window = Window(D0 - 2 * HOUR_MS, D0 + 2 * DAY_MS + 3 * HOUR_MS)
    buckets = decompose(window)
    assert buckets == [
        Bucket("h", D0 - 2 * HOUR_MS),
        Bucket("h", D0 - HOUR_MS),
        Bucket("d", D0),
        Bucket("d", D0 + DAY_MS),
        Bucket("h", D0 + 2 * DAY_MS),
        Bucket("h", D0 + 2 * DAY_MS + HOUR_MS),
        Bucket("h", D0 + 2 * DAY_MS + 2 * HOUR_MS),
    ]


@pytest.mark.parametrize("hours", [1, 5, 23, 24, 25, 24 * 7, 24 * 28 + 7])
@pytest.mark.parametrize("offset_hours", [0, 1, 13, 23])
def test_decompose_covers_the_window_exactly_once(hours, offset_hours):
    window = Window(D0 + offset_hours * HOUR_MS, D0 + (offset_hours + hours) * HOUR_MS)
    covered = []
    for b in decompose(window):
        size = HOUR_MS if b.granularity == "h" else DAY_MS
        covered.extend(range(b.start_ms, b.start_ms + size, HOUR_MS))
    assert covered == list(range(window.start_ms, window.end_ms, HOUR_MS))


def test_decompose_refuses_unaligned_windows():
    with pytest.raises(ValueError, match="aligned"):
        decompose(Window(D0 + 1, D0 + HOUR_MS))


def test_aligned_window_widens_outwards_to_whole_hours():
    assert aligned_window(D0 + 1, D0 + HOUR_MS + 1) == Window(D0, D0 + 2 * HOUR_MS)
    with pytest.raises(ValueError):
        aligned_window(D0, D0)


def test_plan_widens_an_edge_older_than_the_hour_buckets_to_a_whole_day():
    window = Window(D0 - 3 * HOUR_MS, D0 + 5 * DAY_MS + 2 * HOUR_MS)
    actual, buckets = plan(window, hour_floor_ms=D0 + DAY_MS)
    assert actual == Window(D0 - DAY_MS, D0 + 5 * DAY_MS + 2 * HOUR_MS)
    assert all(b.granularity == "d" or b.start_ms >= D0 + DAY_MS for b in buckets)


def test_plan_keeps_recent_windows_exact():
    window = Window(D0 + 3 * HOUR_MS, D0 + DAY_MS + 3 * HOUR_MS)
    assert plan(window, hour_floor_ms=D0 - DAY_MS)[0] == window
