"""The API's hardening apart from who may see what (tests/api/test_access.py): security
headers on every kind of response, CORS off unless origins are configured, URL and body
size limits, the per-token rate limit, and 4xx answers that say what was wrong."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from gapwatch.api.app import create_app
from gapwatch.core.refdata import ReferenceData
from gapwatch.core.windows import HOUR_MS
from gapwatch.settings import Settings
from tests.api.conftest import NATIONAL, NOW, NOW_S, MemoryStore, profile
from tests.tokens import bearer, token

VIEW = "/v1/icbs/QOP/indicators/ed_attendance_rate"
ORIGIN = "https://dashboards.example.nhs.uk"


def make_client(
    store: MemoryStore, ref: ReferenceData, *, headers: dict[str, str] | None = None, **auth: Any
) -> TestClient:
    """The in-memory app with these auth settings; a national token unless ``headers``."""
    app = create_app(
        Settings(api={"versions_max_age_ms": 0}, auth=auth),
        store,
        ref,
        clock_ms=lambda: NOW,
        broker_check=lambda: True,
    )
    return TestClient(app, headers=NATIONAL if headers is None else headers)


@pytest.fixture()
def seeded(store: MemoryStore) -> Iterator[MemoryStore]:
    for q in ("1", "3", "5"):
        store.add(NOW - 2 * HOUR_MS, profile(q), ("ed_arrival",))
    yield store


@pytest.fixture()
def anonymous(seeded: MemoryStore, tiny_ref: ReferenceData) -> TestClient:
    """No token, as a browser's pre-flight request or a stranger sends it."""
    return make_client(seeded, tiny_ref, headers={})


# --- security headers ------------------------------------------------------------------

PROTECTED = [
    (VIEW, 200, "application/json"),
    (VIEW + "/export.csv", 200, "text/csv"),
    ("/v1/icbs/XXX/indicators/ed_attendance_rate", 404, "application/json"),
    (VIEW + "?window=3w", 422, "application/json"),
    ("/v1/icbs/QOP/indicators/ed_attendance_rate/series?points=abc", 422, "application/json"),
    ("/v1/no-such-route", 404, "application/json"),
]
UNPROTECTED = [
    ("/static/app.js", 200, "text/javascript"),
    ("/static/nope.js", 404, "application/json"),
    ("/healthz", 200, "application/json"),
    ("/v1/public/indicators", 200, "application/json"),
]


def assert_security_headers(response: Any, referrer: str = "no-referrer") -> None:
    h = response.headers
    for name, value in (
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
        ("referrer-policy", referrer),
    ):
        # Exactly once: a second, different copy is how a browser ends up ignoring both.
        assert h.get_list(name) == [value], (name, h.get_list(name))
    policies = h.get_list("content-security-policy")
    assert len(policies) == 1, policies
    assert "frame-ancestors 'none'" in policies[0]
    assert "max-age=" in h["strict-transport-security"]


@pytest.mark.parametrize(("url", "status", "content_type"), PROTECTED)
def test_protected_answers_and_errors_carry_security_headers_and_are_never_stored(
    seeded: MemoryStore, tiny_ref: ReferenceData, url: str, status: int, content_type: str
) -> None:
    client = make_client(seeded, tiny_ref)
    response = client.get(url)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(content_type)
    assert_security_headers(response)
    assert "no-store" in response.headers["cache-control"]
    assert "Authorization" in response.headers["vary"]


def test_a_cached_answer_carries_the_same_headers(client: TestClient, store: MemoryStore) -> None:
    store.add(NOW - 2 * HOUR_MS, profile("2"), ("ed_arrival",))
    first, again = client.get(VIEW), client.get(VIEW)  # the second is the fast path's
    assert first.json() == again.json()
    for response in (first, again):
        assert_security_headers(response)
        assert "no-store" in response.headers["cache-control"]


@pytest.mark.parametrize(("url", "status", "content_type"), UNPROTECTED)
def test_public_pages_and_operational_endpoints_carry_security_headers(
    anonymous: TestClient, url: str, status: int, content_type: str
) -> None:
    response = anonymous.get(url)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(content_type)
    assert_security_headers(response)


def test_the_dashboard_keeps_its_own_policies_and_data_gets_the_strictest(
    client: TestClient, anonymous: TestClient
) -> None:
    response = anonymous.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    # Its own links may name the page (same-origin); nothing may frame it.
    assert_security_headers(response, referrer="same-origin")
    page = response.headers["content-security-policy"]
    assert "default-src 'self'" in page and "script-src 'self'" in page
    data = client.get("/v1/indicators").headers["content-security-policy"]
    assert data.startswith("default-src 'none'")


@pytest.mark.parametrize(
    ("headers", "detail"),
    [
        ({}, "needs a bearer token"),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, "must be 'Bearer <token>'"),
        (bearer("not-a-token"), ""),
    ],
)
def test_refusals_without_a_valid_token_carry_security_headers_and_a_reason(
    seeded: MemoryStore, tiny_ref: ReferenceData, headers: dict[str, str], detail: str
) -> None:
    response = make_client(seeded, tiny_ref, headers=headers).get(VIEW)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert detail in response.json()["detail"] and response.json()["detail"]
    assert_security_headers(response)
    assert "no-store" in response.headers["cache-control"]


# --- CORS ------------------------------------------------------------------------------

PREFLIGHT = {"Origin": ORIGIN, "Access-Control-Request-Method": "GET"}


def cors_headers(response: Any) -> list[str]:
    return [name for name in response.headers if name.lower().startswith("access-control-")]


def test_cors_is_off_by_default(client: TestClient, anonymous: TestClient) -> None:
    response = client.get(VIEW, headers={"Origin": ORIGIN})
    assert response.status_code == 200
    assert cors_headers(response) == []
    preflight = anonymous.options(
        VIEW, headers=PREFLIGHT | {"Access-Control-Request-Headers": "authorization"}
    )
    assert preflight.status_code >= 400  # no token, and nothing answers pre-flights
    assert cors_headers(preflight) == []


def test_cors_allows_only_the_configured_origins_and_only_get(
    seeded: MemoryStore, tiny_ref: ReferenceData
) -> None:
    client = make_client(seeded, tiny_ref, cors_origins=[ORIGIN])
    allowed = client.get(VIEW, headers={"Origin": ORIGIN})
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == ORIGIN
    other = client.get(VIEW, headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in other.headers

    anonymous = make_client(seeded, tiny_ref, headers={}, cors_origins=[ORIGIN])
    preflight = anonymous.options(
        VIEW, headers=PREFLIGHT | {"Access-Control-Request-Headers": "authorization"}
    )
    assert preflight.status_code == 200  # answered before the token check: it has none
    assert preflight.headers["access-control-allow-origin"] == ORIGIN
    assert "GET" in preflight.headers["access-control-allow-methods"]
    assert "DELETE" not in preflight.headers["access-control-allow-methods"]
    assert "authorization" in preflight.headers["access-control-allow-headers"].lower()
    refused = anonymous.options(VIEW, headers=PREFLIGHT | {"Origin": "https://evil.example"})
    assert refused.status_code == 400
    assert "access-control-allow-origin" not in refused.headers


# --- size limits -----------------------------------------------------------------------


def url_of_length(n: int, path: str = "/v1/indicators") -> str:
    """A URL whose path plus query string is exactly ``n`` bytes (what the guard counts)."""
    return f"{path}?pad={'x' * (n - len(path) - len('pad='))}"


def test_a_url_over_the_limit_is_refused_with_414_before_authentication(
    client: TestClient, anonymous: TestClient
) -> None:
    limit = Settings().auth.max_url_bytes
    assert client.get(url_of_length(limit)).status_code == 200
    for caller in (client, anonymous):
        response = caller.get(url_of_length(limit + 1))
        assert response.status_code == 414
        assert f"longer than {limit} bytes" in response.json()["detail"]
        assert_security_headers(response)


def test_a_smaller_configured_url_limit_applies(
    seeded: MemoryStore, tiny_ref: ReferenceData
) -> None:
    client = make_client(seeded, tiny_ref, max_url_bytes=300)
    assert client.get(url_of_length(300)).status_code == 200
    assert client.get(url_of_length(301)).status_code == 414


@pytest.mark.parametrize("url", [VIEW, "/healthz", "/v1/public/indicators"])
def test_a_request_body_is_refused_with_413(client: TestClient, url: str) -> None:
    response = client.request("GET", url, content=b'{"a": 1}')
    assert response.status_code == 413
    assert "request bodies over 0 bytes" in response.json()["detail"]
    assert_security_headers(response)


def test_a_chunked_body_is_refused_with_413(client: TestClient) -> None:
    response = client.request("POST", VIEW, content=iter([b"x" * 10]))
    assert response.status_code == 413
    assert "chunked" in response.json()["detail"]


def test_a_body_within_a_configured_limit_reaches_the_route(
    seeded: MemoryStore, tiny_ref: ReferenceData
) -> None:
    client = make_client(seeded, tiny_ref, max_body_bytes=16)
    assert client.request("GET", VIEW, content=b"x" * 16).status_code == 200
    assert client.request("GET", VIEW, content=b"x" * 17).status_code == 413


# --- rate limits -----------------------------------------------------------------------


def limited_client(store: MemoryStore, ref: ReferenceData, headers: dict[str, str]) -> TestClient:
    # A burst of 3 that refills one request per 1000 s: no refill during the test.
    return make_client(store, ref, headers=headers, rate_burst=3, rate_per_s=0.001)


def test_a_token_over_its_burst_gets_429_with_retry_after_and_another_token_does_not(
    seeded: MemoryStore, tiny_ref: ReferenceData
) -> None:
    a = bearer(token("national", now_s=NOW_S, subject="analyst-a"))
    b = bearer(token("national", now_s=NOW_S, subject="analyst-b"))
    client = limited_client(seeded, tiny_ref, a)
    assert [client.get(VIEW).status_code for _ in range(3)] == [200, 200, 200]
    refused = client.get(VIEW)
    assert refused.status_code == 429
    assert int(refused.headers["retry-after"]) >= 1
    assert "rate limit" in refused.json()["detail"]
    assert "retry after" in refused.json()["detail"]
    assert_security_headers(refused)
    # Any route counts against the same budget; another token has its own.
    assert client.get("/v1/indicators").status_code == 429
    assert client.get(VIEW, headers=b).status_code == 200


def test_requests_without_a_token_share_their_address_budget(
    seeded: MemoryStore, tiny_ref: ReferenceData
) -> None:
    client = limited_client(seeded, tiny_ref, {})
    statuses = [client.get("/v1/public/indicators").status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]


# --- clear 4xx messages ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "status", "words"),
    [
        (VIEW + "?window=3w", 422, ("window", "'3w'", "1h, 24h, 7d or 28d")),
        (VIEW + "?window=0h", 422, ("window", "longer than zero")),
        ("/v1/icbs/XXX/indicators/ed_attendance_rate", 404, ("unknown ICB", "'XXX'", "/v1/icbs")),
        ("/v1/icbs/QOP/indicators/nope", 404, ("unknown indicator", "'nope'", "/v1/indicators")),
        ("/v1/regions/ZZZ/indicators/ed_attendance_rate", 404, ("unknown region", "'ZZZ'")),
        (VIEW + "?by=postcode", 422, ("unknown breakdown", "'postcode'", "imd_quintile")),
        (VIEW + "?start=2024-01-01", 422, ("start and end",)),
        (VIEW + "?confidence=2", 422, ("confidence", "2")),
        (VIEW + "?standardised=maybe", 422, ("standardised", "boolean")),
        (VIEW + "/series?points=abc", 422, ("points", "integer")),
        (VIEW + "/series?points=5", 422, ("points", "13")),
    ],
)
def test_4xx_answers_name_the_problem(
    client: TestClient, url: str, status: int, words: tuple[str, ...]
) -> None:
    response = client.get(url)
    assert response.status_code == status, response.text
    detail = response.json()["detail"]
    assert isinstance(detail, str), "detail is one sentence a person can read"
    for word in words:
        assert word in detail, (word, detail)
