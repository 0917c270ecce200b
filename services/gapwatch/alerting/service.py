"""The alerter's loop: refresh the changed days, re-chart what they touch, watch the
feeds, record the changes, deliver them.

One cycle every ``alerts.interval_s``. State is saved before anything is delivered, so
a crash between the two re-delivers nothing new on restart (the saved state already
holds the change) and loses no firing alert (channels that re-send, like the
Alertmanager push, are synced from the saved firing set every cycle).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from gapwatch.adapters.alert_store import AlertStore
from gapwatch.adapters.redis_store import RedisStore
from gapwatch.alerting.channels import AlertChannel
from gapwatch.alerting.evaluator import ChartPlan, evaluate_icb, icbs_to_evaluate
from gapwatch.alerting.gap_book import GapBook
from gapwatch.alerting.metrics import AlerterMetrics
from gapwatch.core.alert_events import AlertEvent
from gapwatch.core.alert_messages import feed_event
from gapwatch.core.feed_staleness import FeedState, watch_feed
from gapwatch.core.gap_alerts import Alert
from gapwatch.core.indicators import CATALOGUE
from gapwatch.core.period_gaps import series_ids
from gapwatch.core.refdata import ReferenceData
from gapwatch.core.spc import SpcOptions
from gapwatch.core.windows import DAY_MS
from gapwatch.settings import AlertSettings, Settings

__all__ = ["Alerter", "Cycle"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Cycle:
    icbs_evaluated: int
    series_charted: int
    days_read: int
    events: tuple[AlertEvent, ...]
    seconds: float


def spc_options(alerts: AlertSettings) -> SpcOptions:
    return SpcOptions(
        screen_outliers=alerts.screen_outliers,
        two_in_three=alerts.two_in_three,
        run_length=alerts.run_length,
        fix_after=alerts.fix_after,
    )


class Alerter:
    def __init__(
        self,
        settings: Settings,
        ref: ReferenceData,
        counts: RedisStore,
        store: AlertStore,
        channels: Sequence[AlertChannel],
        metrics: AlerterMetrics,
        clock_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
    ) -> None:
        self._settings = settings
        self._alerts = settings.alerts
        self._ref = ref
        self._counts = counts
        self._store = store
        self._channels = list(channels)
        self._metrics = metrics
        self._clock = clock_ms
        self._book = GapBook(ref, settings.api.reference_ethnic_group, settings.alerts.min_events)
        indicators = self._alerts.indicators or tuple(CATALOGUE)
        unknown = [i for i in indicators if i not in CATALOGUE]
        if unknown:
            raise ValueError(f"unknown indicators in alerts.indicators: {', '.join(unknown)}")
        self._series = tuple(
            series_ids(indicators, self._alerts.breakdowns, settings.api.reference_ethnic_group)
        )
        self._options = spc_options(self._alerts)
        self._plan: ChartPlan | None = None
        self._waiting: set[str] = set()
        """ICBs whose charts may have changed and are not re-charted yet."""
        self._last_change: dict[str, int] = {}
        """ICB -> when one of its charted days last changed (after the first read)."""
        self._gap: dict[str, Alert] = {}
        self._feeds: dict[str, FeedState] = {}
        self._loaded = False

    @property
    def book(self) -> GapBook:
        return self._book

    async def start(self) -> None:
        """Load the saved state, and show the firing alerts on the gauges."""
        self._gap = await self._store.load_gap_alerts()
        self._feeds = await self._store.load_feeds()
        for event in await self._store.current():
            self._metrics.show(event)
        self._loaded = True

    async def run_once(self) -> Cycle:
        if not self._loaded:
            await self.start()
        started = time.perf_counter()
        now = self._clock()
        a = self._alerts
        plan = ChartPlan.at(
            now, self._series, a.period, a.lateness_s * 1000, a.history_periods, self._options
        )
        versions = await self._counts.day_versions()
        read_before = self._book.days_read
        changed = await self._book.refresh(
            versions, self._counts.read_day_fields, plan.oldest_day_ms, self._ref.icbs
        )
        known = self._book.known_icbs() & set(self._ref.icbs)
        self._waiting |= icbs_to_evaluate(self._plan, plan, changed, known)
        if self._plan is not None or read_before:
            for icb, days in changed.items():
                if any(plan.oldest_day_ms <= d < plan.end_ms for d in days):
                    self._last_change[icb] = now
        # Wait until an ICB's closed days stop changing (a backfill or replay arriving),
        # so a half-counted history does not fire and resolve alerts as it fills in.
        settle = a.settle_s * 1000
        icbs = sorted(
            icb for icb in self._waiting if now - self._last_change.get(icb, now - settle) >= settle
        )
        updated: list[Alert] = []
        events: list[AlertEvent] = []
        charted = 0
        for icb in icbs:
            alerts, changes, n = evaluate_icb(
                self._book, icb, self._ref.icbs[icb].name, plan, self._gap, now
            )
            updated.extend(alerts)
            events.extend(changes)
            charted += n
            await asyncio.sleep(0)  # let queued deliveries run between ICBs
        feeds, feed_events = await self._watch_feeds(now)
        await self._store.save(updated, feeds, events + feed_events)
        # Only now that the state is saved: remember it, then deliver.
        self._gap.update((alert.id, alert) for alert in updated)
        self._feeds.update((feed.trust, feed) for feed in feeds)
        self._plan = plan
        self._waiting -= set(icbs)
        self._book.forget_before(plan.oldest_day_ms)
        await self._forget_expired_days(versions, now)
        every = events + feed_events
        for event in every:
            self._metrics.record(event)
            logger.info("alert %s %s: %s", event.change, event.id, event.annotations["summary"])
            for channel in self._channels:
                await channel.notify(event)
        # One read of the alert list per cycle: expire old resolutions, re-send firing.
        current = await self._store.forget_resolved(await self._store.current(), now)
        firing = [e for e in current if e.firing]
        for channel in self._channels:
            await channel.sync(firing, now)
        seconds = time.perf_counter() - started
        m = self._metrics
        m.last_evaluation.set(now / 1000)
        m.evaluation_seconds.observe(seconds)
        m.series_charted.inc(charted)
        m.days_read.inc(self._book.days_read - read_before)
        return Cycle(len(icbs), charted, self._book.days_read - read_before, tuple(every), seconds)

    async def _watch_feeds(self, now: int) -> tuple[list[FeedState], list[AlertEvent]]:
        a = self._alerts
        rows = await self._counts.freshness(now)
        states: list[FeedState] = []
        events: list[AlertEvent] = []
        for trust, row in rows.items():
            before = self._feeds.get(trust)
            state, change = watch_feed(
                before, row, now, a.stale_multiple, a.stale_min_silence_s * 1000
            )
            if state != before:
                states.append(state)
            if change is not None:
                info = self._ref.trusts.get(trust)
                name = info.name if info else trust
                icb = (info.home_icb if info else None) or "unknown"
                events.append(feed_event(state, change, now, name, icb, a.stale_multiple))
        return states, events

    async def _forget_expired_days(self, versions: dict[tuple[str, int], str], now: int) -> None:
        oldest = now - self._settings.ingest.day_retention_days * DAY_MS - DAY_MS
        await self._counts.forget_day_versions([k for k in versions if k[1] < oldest])

    async def run(self, stop: asyncio.Event) -> None:
        """Cycle until ``stop`` is set; a cycle that fails (Redis down) is retried next
        interval, with the state it had."""
        while not stop.is_set():
            try:
                cycle = await self.run_once()
                if cycle.icbs_evaluated:
                    logger.info(
                        "evaluated icbs=%d series=%d days_read=%d changes=%d seconds=%.2f",
                        cycle.icbs_evaluated,
                        cycle.series_charted,
                        cycle.days_read,
                        len(cycle.events),
                        cycle.seconds,
                    )
            except Exception:
                # The book may have taken in changed days whose charts were not saved:
                # re-chart everything next time rather than miss them.
                self._plan = None
                self._waiting.clear()
                logger.exception("evaluation cycle failed; retrying")
            try:
                await asyncio.wait_for(stop.wait(), self._alerts.interval_s)
            except TimeoutError:
                pass
        for channel in self._channels:
            await channel.close()
