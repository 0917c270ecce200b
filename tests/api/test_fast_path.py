"""Cached answers are replayed before routing, only for exactly the same request."""

from __future__ import annotations

from gapwatch.api.fast_path import CachedAnswersFirst
from gapwatch.core.windows import HOUR_MS
from tests.api.conftest import NOW, profile

URL = "/v1/icbs/QOP/indicators/ed_attendance_rate?window=24h"


def _downstream_calls(client) -> list[str]:
    """Wrap the app behind the fast path so the test sees which requests reach it."""
    stack = client.app.middleware_stack or client.app.build_middleware_stack()
    client.app.middleware_stack = stack
    layer = stack
    while not isinstance(layer, CachedAnswersFirst):
        layer = layer.app
    calls: list[str] = []
    inner = layer.app

    async def recording(scope, receive, send):
        calls.append(scope["path"])
        await inner(scope, receive, send)

    layer.app = recording
    return calls


def test_a_repeated_query_is_answered_before_routing(client, store):
    store.add(NOW - HOUR_MS, profile("1"), ("ed_arrival",))
    client.get("/healthz")  # builds the middleware stack
    calls = _downstream_calls(client)
    first = client.get(URL)
    second = client.get(URL)
    assert first.status_code == second.status_code == 200
    assert second.content == first.content
    assert second.headers["content-type"] == "application/json"
    assert calls == ["/v1/icbs/QOP/indicators/ed_attendance_rate"]  # only the first
    metrics = client.get("/metrics").text
    route = 'route="/v1/icbs/{icb}/indicators/{indicator}",status="200"} 2.0'
    assert route in metrics


def test_new_data_and_other_query_strings_go_through_the_app(client, store):
    store.add(NOW - HOUR_MS, profile("1"), ("ed_arrival",))
    client.get("/healthz")
    calls = _downstream_calls(client)
    client.get(URL)
    store.add(NOW - HOUR_MS, profile("1"), ("ed_arrival",))
    assert client.get(URL).json()["total"]["numerator"] == 2
    bad = client.get(URL + "&confidence=50")
    assert bad.status_code == 422
    assert len(calls) == 3


def test_a_down_store_is_a_503_with_a_message_from_the_fast_path(client, store):
    """A repeated query while Redis is down: the fast path's own read fails, so it
    answers 503 itself instead of letting the app wait for a second timeout."""
    store.add(NOW - HOUR_MS, profile("1"), ("ed_arrival",))
    client.get("/healthz")
    calls = _downstream_calls(client)
    assert client.get(URL).status_code == 200
    store.down = True
    answer = client.get(URL)
    assert answer.status_code == 503
    assert answer.json() == {
        "detail": "temporarily unavailable: redis unavailable: connection refused"
    }
    assert len(calls) == 1  # the app (and its second Redis read) was never reached
