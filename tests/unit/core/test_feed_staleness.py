"""Stale feeds are judged against their own usual gap between events."""

from __future__ import annotations

from gapwatch.core.feed_staleness import FeedState, watch_feed
from gapwatch.core.ports import FreshnessRow

MIN = 60_000
NOW = 1_795_780_000_000


def _row(last_received: int | None, per_hour: int) -> FreshnessRow:
    return FreshnessRow("R0A", last_received, last_received, per_hour)


def _watch(state: FeedState | None, row: FreshnessRow, now: int) -> tuple[FeedState, str | None]:
    return watch_feed(state, row, now, multiple=10, min_silence_ms=15 * MIN)


def test_a_busy_feed_goes_stale_after_the_minimum_silence_and_resolves_on_events() -> None:
    state, change = _watch(None, _row(NOW, 3600), NOW)  # one event a second
    assert change is None and state.state == "ok" and state.usual_gap_ms == 1000
    # 10 usual gaps is only 10 s: the 15-minute floor decides.
    state, change = _watch(state, _row(NOW, 3500), NOW + 14 * MIN)
    assert change is None and state.state == "ok"
    state, change = _watch(state, _row(NOW, 3300), NOW + 16 * MIN)
    assert change == "new" and state.state == "firing" and state.first_seen_ms == NOW + 16 * MIN
    assert state.alert_id == "feed:R0A" and state.silent_ms == 16 * MIN
    state, change = _watch(state, _row(NOW, 3000), NOW + 20 * MIN)
    assert change is None and state.last_seen_ms == NOW + 20 * MIN
    state, change = _watch(state, _row(NOW + 21 * MIN, 2900), NOW + 21 * MIN)
    assert change == "resolved" and state.resolved_ms == NOW + 21 * MIN


def test_a_sparse_feed_is_judged_by_its_own_rhythm() -> None:
    # Four events an hour: usual gap 15 minutes, so stale only after 150 minutes.
    state, _ = _watch(None, _row(NOW, 4), NOW)
    assert state.usual_gap_ms == 15 * MIN
    # As the hour empties, the estimate is frozen (the feed is no longer flowing).
    state, change = _watch(state, _row(NOW, 1), NOW + 100 * MIN)
    assert change is None and state.usual_gap_ms == 15 * MIN
    state, change = _watch(state, _row(NOW, 0), NOW + 149 * MIN)
    assert change is None
    state, change = _watch(state, _row(NOW, 0), NOW + 151 * MIN)
    assert change == "new"


def test_a_feed_never_seen_flowing_is_not_judged() -> None:
    state, change = _watch(None, _row(NOW - 600 * MIN, 0), NOW)
    assert change is None and state.usual_gap_ms is None and state.state == "ok"
    state, change = _watch(None, _row(None, 0), NOW)
    assert change is None
