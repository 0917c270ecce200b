"""When a trust's feed goes quiet for longer than its own rhythm explains.

A busy emergency department sends an event every few seconds; a small trust's waiting
list snapshot arrives a few times an hour. One fixed silence threshold would either
miss the first or cry wolf about the second, so each feed is judged against its usual
gap between events: 3,600 s over the events received in the hour ending now, learned
while the feed is flowing and frozen once it goes quiet (otherwise the estimate would
stretch with the silence it is meant to detect). A feed is stale when it has been
silent for more than ``multiple`` usual gaps and at least ``min_silence_ms``; it is
resolved when events arrive again.

Pure: the previous state and the feed's freshness come in, the new state and the change
to deliver go out.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from gapwatch.core.ports import FreshnessRow

__all__ = ["FeedState", "watch_feed"]

HOUR_MS = 3_600_000
Change = Literal["new", "updated", "resolved"]


@dataclass(frozen=True, slots=True)
class FeedState:
    trust: str
    usual_gap_ms: float | None
    """None until the feed has been seen flowing."""
    state: Literal["ok", "firing", "resolved"]
    first_seen_ms: int | None = None
    """When the current (or last) stale alert fired."""
    last_seen_ms: int | None = None
    resolved_ms: int | None = None
    silent_ms: int = 0
    """How long the feed had been silent at the last evaluation."""

    @property
    def alert_id(self) -> str:
        return f"feed:{self.trust}"


def watch_feed(
    previous: FeedState | None,
    row: FreshnessRow,
    now_ms: int,
    multiple: float,
    min_silence_ms: int,
) -> tuple[FeedState, Change | None]:
    """The feed's state after looking at it at ``now_ms``, and what changed."""
    state = previous or FeedState(row.provider_code, None, "ok")
    if row.last_received_ms is None:
        return state, None
    silent = max(now_ms - row.last_received_ms, 0)
    usual = state.usual_gap_ms
    flowing = usual is None or silent <= 2 * usual
    if flowing and row.events_last_hour > 0:
        usual = HOUR_MS / row.events_last_hour
    state = replace(state, usual_gap_ms=usual, silent_ms=silent)
    stale = usual is not None and silent > multiple * usual and silent >= min_silence_ms
    if stale:
        if state.state != "firing":
            return replace(
                state, state="firing", first_seen_ms=now_ms, last_seen_ms=now_ms, resolved_ms=None
            ), "new"
        return replace(state, last_seen_ms=now_ms), None
    if state.state == "firing":
        return replace(state, state="resolved", resolved_ms=now_ms), "resolved"
    return state, None
