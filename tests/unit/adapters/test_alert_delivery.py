"""The alert channels' pure parts: AlertEvent -> Alertmanager v2 postable alert and
webhook message, timestamps, fingerprints, retry delays, and the notifiers' queueing and
re-send bookkeeping (no sockets: nothing is run, the queues are read directly)."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from gapwatch.adapters.alertmanager import AlertmanagerNotifier, alerts_url, postable_alert
from gapwatch.adapters.delivery import GO_ZERO_TIME, RetryPolicy, generator_url, rfc3339
from gapwatch.adapters.delivery_metrics import DeliveryMetrics
from gapwatch.adapters.webhooks import (
    WebhookNotifier,
    fingerprint,
    group_key,
    webhook_alert,
    webhook_message,
)
from gapwatch.core.alert_events import AlertEvent

T0 = 1_795_791_081_123  # 2026-11-27T14:51:21.123Z
MIN = 60_000
GAP_LABELS = {
    "alertname": "GapWidening",
    "severity": "warning",
    "icb": "QOP",
    "indicator": "emergency_admission_rate",
    "breakdown": "imd_quintile",
    "measure": "sii",
}
# What Alertmanager 0.25 itself reported for GAP_LABELS (GET /api/v2/alerts).
GAP_FINGERPRINT = "0670ac9aff570b3b"


def gap_event(**changes: object) -> AlertEvent:
    event = AlertEvent(
        id="gap:QOP:emergency_admission_rate:imd_quintile:sii",
        change="new",
        state="firing",
        labels=dict(GAP_LABELS),
        annotations={"summary": "SII widening in QOP", "rule": "astronomical"},
        starts_ms=T0,
        ends_ms=None,
        at_ms=T0,
    )
    return replace(event, **changes)  # type: ignore[arg-type]


def resolved(event: AlertEvent, at_ms: int) -> AlertEvent:
    return replace(event, change="resolved", state="resolved", ends_ms=at_ms, at_ms=at_ms)


def feed_event(trust: str = "R0A") -> AlertEvent:
    return AlertEvent(
        id=f"feed:{trust}",
        change="new",
        state="firing",
        labels={"alertname": "FeedStale", "severity": "warning", "trust": trust, "icb": "QOP"},
        annotations={"summary": f"{trust} silent"},
        starts_ms=T0,
        ends_ms=None,
        at_ms=T0,
    )


# --- timestamps and small helpers ---------------------------------------------------------


@pytest.mark.parametrize(
    ("ms", "text"),
    [
        (0, "1970-01-01T00:00:00.000Z"),
        (T0, "2026-11-27T14:51:21.123Z"),
        (T0 - 123, "2026-11-27T14:51:21.000Z"),
        (T0 + 877, "2026-11-27T14:51:22.000Z"),
        (1_000_000_000_007, "2001-09-09T01:46:40.007Z"),
    ],
)
def test_rfc3339_is_utc_with_milliseconds_and_z(ms: int, text: str) -> None:
    assert rfc3339(ms) == text


def test_alerts_url_appends_the_v2_path_once() -> None:
    assert alerts_url("http://am:9093") == "http://am:9093/api/v2/alerts"
    assert alerts_url("http://am:9093/prefix/") == "http://am:9093/prefix/api/v2/alerts"


def test_generator_url_quotes_the_alert_id_into_the_template() -> None:
    assert (
        generator_url("https://gw.example/v1/alerts/{id}", gap_event())
        == "https://gw.example/v1/alerts/gap%3AQOP%3Aemergency_admission_rate%3Aimd_quintile%3Asii"
    )
    assert generator_url("", gap_event()) == ""


def test_retry_delays_grow_exponentially_to_the_cap() -> None:
    policy = RetryPolicy(base_ms=100, cap_ms=1_000, jitter=False)
    assert [policy.delay_s(a, 0.5) for a in range(6)] == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]


@pytest.mark.parametrize("rand", [0.0, 0.25, 0.999])
def test_jittered_delays_stay_between_half_and_all_of_the_backoff(rand: float) -> None:
    policy = RetryPolicy(base_ms=100, cap_ms=1_000)
    for attempt in range(6):
        full = min(1_000, 100 * 2**attempt) / 1000
        assert full / 2 <= policy.delay_s(attempt, rand) <= full


def test_a_retry_policy_without_attempts_is_refused() -> None:
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)


# --- Alertmanager v2 postable alerts ------------------------------------------------------


def test_a_firing_alert_is_posted_with_a_lease_as_endsat() -> None:
    alert = postable_alert(gap_event(), now_ms=T0 + MIN, lease_ms=4 * MIN)
    assert alert == {
        "labels": GAP_LABELS,
        "annotations": {"summary": "SII widening in QOP", "rule": "astronomical"},
        "startsAt": "2026-11-27T14:51:21.123Z",
        "endsAt": "2026-11-27T14:56:21.123Z",
    }


def test_a_resolved_alert_is_posted_with_its_resolve_time_as_endsat() -> None:
    event = resolved(gap_event(), T0 + 10 * MIN)
    alert = postable_alert(event, now_ms=T0 + 11 * MIN, lease_ms=4 * MIN, generator_url="http://x/")
    assert alert["endsAt"] == "2026-11-27T15:01:21.123Z"
    assert alert["startsAt"] == "2026-11-27T14:51:21.123Z"
    assert alert["generatorURL"] == "http://x/"


def test_a_resolved_alert_without_ends_ms_ends_when_the_change_was_decided() -> None:
    event = replace(gap_event(), state="resolved", change="resolved", at_ms=T0 + 5 * MIN)
    alert = postable_alert(event, now_ms=T0 + 6 * MIN, lease_ms=4 * MIN)
    assert alert["endsAt"] == rfc3339(T0 + 5 * MIN)


def test_postable_alerts_copy_labels_rather_than_share_them() -> None:
    event = gap_event()
    alert = postable_alert(event, now_ms=T0, lease_ms=MIN)
    alert["labels"]["icb"] = "changed"
    assert event.labels["icb"] == "QOP"


# --- webhook messages ---------------------------------------------------------------------


def test_the_fingerprint_is_alertmanagers_own() -> None:
    assert fingerprint(GAP_LABELS) == GAP_FINGERPRINT


def test_the_fingerprint_ignores_label_order_and_sees_every_value() -> None:
    reordered = dict(reversed(list(GAP_LABELS.items())))
    assert fingerprint(reordered) == GAP_FINGERPRINT
    assert fingerprint({**GAP_LABELS, "measure": "rii"}) != GAP_FINGERPRINT
    # name/value boundaries count: {"ab": "c"} is not {"a": "bc"}
    assert fingerprint({"ab": "c"}) != fingerprint({"a": "bc"})


def test_the_fingerprint_of_no_labels_is_the_fnv_offset_basis() -> None:
    assert fingerprint({}) == "cbf29ce484222325"


def test_group_key_reads_like_alertmanagers() -> None:
    assert (
        group_key({"icb": "QOP", "alertname": "GapWidening"})
        == '{}:{alertname="GapWidening", icb="QOP"}'
    )
    assert group_key({"a": 'say "hi"\\'}) == '{}:{a="say \\"hi\\"\\\\"}'


def test_a_firing_webhook_alert_ends_at_gos_zero_time() -> None:
    alert = webhook_alert(gap_event(), "http://gw/a")
    assert alert == {
        "status": "firing",
        "labels": GAP_LABELS,
        "annotations": {"summary": "SII widening in QOP", "rule": "astronomical"},
        "startsAt": "2026-11-27T14:51:21.123Z",
        "endsAt": GO_ZERO_TIME,
        "generatorURL": "http://gw/a",
        "fingerprint": GAP_FINGERPRINT,
    }
    assert GO_ZERO_TIME == "0001-01-01T00:00:00Z"


def test_a_resolved_webhook_alert_ends_when_it_resolved() -> None:
    alert = webhook_alert(resolved(gap_event(), T0 + MIN))
    assert alert["status"] == "resolved"
    assert alert["endsAt"] == "2026-11-27T14:52:21.123Z"
    assert alert["fingerprint"] == GAP_FINGERPRINT


def test_a_webhook_message_is_one_group_in_alertmanagers_version_4_shape() -> None:
    message = webhook_message(
        gap_event(), receiver="nhs-oncall", external_url="http://gw.example", generator_url="g"
    )
    assert message == {
        "version": "4",
        "groupKey": '{}:{alertname="GapWidening", icb="QOP"}',
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "nhs-oncall",
        "groupLabels": {"alertname": "GapWidening", "icb": "QOP"},
        "commonLabels": GAP_LABELS,
        "commonAnnotations": {"summary": "SII widening in QOP", "rule": "astronomical"},
        "externalURL": "http://gw.example",
        "alerts": [webhook_alert(gap_event(), "g")],
    }


def test_a_resolved_change_makes_a_resolved_message() -> None:
    message = webhook_message(resolved(feed_event(), T0 + MIN))
    assert message["status"] == "resolved"
    assert message["groupLabels"] == {"alertname": "FeedStale", "icb": "QOP"}
    assert message["alerts"][0]["labels"]["trust"] == "R0A"


def test_group_labels_skip_labels_the_alert_does_not_have() -> None:
    message = webhook_message(gap_event(), group_by=("alertname", "trust"))
    assert message["groupLabels"] == {"alertname": "GapWidening"}


# --- notifiers: queueing and re-sends (nothing is run, so nothing is sent) ------------------


def queued(notifier: AlertmanagerNotifier | WebhookNotifier, url: int = 0) -> list[Any]:
    queue = notifier.sender.outboxes[url].queue
    items = []
    while not queue.empty():
        items.append(queue.get_nowait())
        queue.task_done()
    return items


def am_notifier(clock_ms: list[int], **kwargs: object) -> AlertmanagerNotifier:
    return AlertmanagerNotifier(
        ["http://am-a:9093", "http://am-b:9093"],
        resend_interval_s=60,
        clock=lambda: clock_ms[0],
        **kwargs,  # type: ignore[arg-type]
    )


def test_notify_queues_the_change_for_every_alertmanager_with_a_lease() -> None:
    async def scenario() -> None:
        clock = [T0 + MIN]
        notifier = am_notifier(clock)
        await notifier.notify(gap_event())
        for url in (0, 1):
            assert queued(notifier, url) == [
                [postable_alert(gap_event(), now_ms=T0 + MIN, lease_ms=4 * MIN)]
            ]
        assert notifier.lease_ms == 240_000

    asyncio.run(scenario())


def test_sync_resends_each_alert_once_its_resend_interval_has_passed() -> None:
    async def scenario() -> None:
        clock = [T0]
        notifier = am_notifier(clock)
        gap = gap_event()
        await notifier.notify(gap)
        queued(notifier)
        await notifier.sync([gap], T0 + 30_000)
        assert queued(notifier) == []  # sent 30 s ago: not due
        feed = feed_event()
        await notifier.sync([gap, feed], T0 + 59_999)
        assert queued(notifier) == [[postable_alert(feed, now_ms=T0 + 59_999, lease_ms=4 * MIN)]]
        await notifier.sync([gap, feed], T0 + MIN)
        [batch] = queued(notifier)
        assert batch == [postable_alert(gap, now_ms=T0 + MIN, lease_ms=4 * MIN)]

    asyncio.run(scenario())


def test_a_resolved_alert_is_resent_for_the_retention_then_forgotten() -> None:
    async def scenario() -> None:
        clock = [T0 + MIN]
        notifier = am_notifier(clock, resolved_retention_s=900)
        gone = resolved(gap_event(), T0 + MIN)
        await notifier.notify(gone)
        queued(notifier)
        await notifier.sync([], T0 + 2 * MIN)
        [batch] = queued(notifier)
        assert batch[0]["endsAt"] == rfc3339(T0 + MIN)
        await notifier.sync([], T0 + MIN + 15 * MIN)
        assert queued(notifier) == []
        assert notifier.active() == []

    asyncio.run(scenario())


def test_an_alert_missing_from_the_firing_list_is_sent_as_resolved_at_once() -> None:
    async def scenario() -> None:
        clock = [T0]
        notifier = am_notifier(clock)
        await notifier.notify(gap_event())
        queued(notifier)
        await notifier.sync([], T0 + 10_000)
        [batch] = queued(notifier)
        assert batch == [postable_alert(resolved(gap_event(), T0 + 10_000), now_ms=0, lease_ms=0)]

    asyncio.run(scenario())


def test_an_alert_firing_again_after_resolving_is_sent_at_once() -> None:
    async def scenario() -> None:
        clock = [T0]
        notifier = am_notifier(clock)
        await notifier.notify(resolved(gap_event(), T0))
        queued(notifier)
        again = gap_event(starts_ms=T0 + 5_000, at_ms=T0 + 5_000)
        await notifier.sync([again], T0 + 5_000)
        [batch] = queued(notifier)
        assert batch == [postable_alert(again, now_ms=T0 + 5_000, lease_ms=4 * MIN)]

    asyncio.run(scenario())


def test_a_full_queue_drops_the_oldest_request_and_counts_it() -> None:
    async def scenario() -> None:
        metrics = DeliveryMetrics.create(CollectorRegistry())
        notifier = WebhookNotifier(
            ["http://hook-a/", "http://hook-b/"], queue_size=2, metrics=metrics
        )
        events = [feed_event(t) for t in ("R0A", "R0B", "R0C")]
        for event in events:
            await notifier.notify(event)
        assert [m["alerts"][0]["labels"]["trust"] for m in queued(notifier)] == ["R0B", "R0C"]
        assert metrics.value("webhook", "dropped") == 2  # one per URL
        assert notifier.sender.outboxes[1].dropped == 1

    asyncio.run(scenario())


def test_both_channels_share_one_counter_on_one_registry() -> None:
    registry = CollectorRegistry()
    metrics = DeliveryMetrics.create(registry)
    metrics.count("alertmanager", "sent")
    metrics.count("webhook", "failed", 2)
    assert metrics.value("alertmanager", "sent") == 1
    assert metrics.value("webhook", "failed") == 2
    assert metrics.value("webhook", "retried") == 0
    with pytest.raises(ValueError, match="Duplicated"):
        DeliveryMetrics.create(registry)


def test_webhook_sync_sends_nothing() -> None:
    async def scenario() -> None:
        notifier = WebhookNotifier(["http://hook/"])
        await notifier.sync([gap_event()], T0)
        assert queued(notifier) == []

    asyncio.run(scenario())
