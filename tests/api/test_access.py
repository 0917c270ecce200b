"""Every non-public endpoint tried the way an attacker would: no token, expired, forged
(another key, ``alg: none``, a tampered scope, another audience or issuer), the wrong
ICB and the wrong role. All are refused or see nothing of the ICB they may not see.

The endpoints are read from the app's own routes, so a route added later is tried too
(and fails here until the table below says how its scope works).
"""

from __future__ import annotations

import base64
import json
import random
from typing import Any

import jwt
import pytest
from fastapi.testclient import TestClient

from gapwatch.api.app import create_app
from gapwatch.api.auth import is_protected
from gapwatch.core.alert_events import AlertEvent
from gapwatch.core.period_gaps import GAP_FIELDS
from gapwatch.core.windows import DAY_MS
from gapwatch.settings import Settings
from tests.api.conftest import NOW, NOW_S, DayRows, MemoryStore, profile
from tests.conftest import TEST_JWT_SECRET, tiny_reference_data
from tests.tokens import bearer, token

TARGET = "QOP"
"""The ICB whose data the attacker is after."""
OTHER = "QHL"
TARGET_TRUST, OTHER_TRUST = "R0A", "RRK"  # R0A is in QOP, RRK in QHL
TODAY = NOW - NOW % DAY_MS

URL_OF = {
    "/v1/indicators": "/v1/indicators",
    "/v1/icbs": "/v1/icbs",
    "/v1/icbs/{icb}/indicators/{indicator}": f"/v1/icbs/{TARGET}/indicators/ed_attendance_rate",
    "/v1/regions/{region}/indicators/{indicator}": "/v1/regions/Y62/indicators/ed_attendance_rate",
    "/v1/england/indicators/{indicator}": "/v1/england/indicators/ed_attendance_rate",
    "/v1/icbs/{icb}/indicators/{indicator}/series": (
        f"/v1/icbs/{TARGET}/indicators/emergency_admission_rate/series"
    ),
    "/v1/icbs/{icb}/indicators/{indicator}/export.csv": (
        f"/v1/icbs/{TARGET}/indicators/ed_attendance_rate/export.csv"
    ),
    "/v1/icbs/{icb}/lsoas": f"/v1/icbs/{TARGET}/lsoas",
    "/v1/freshness": "/v1/freshness",
    "/v1/alerts": "/v1/alerts",
    "/v1/alerts/stream": "/v1/alerts/stream",
    "/v1/audit": "/v1/audit",
    "/v1/dead-letters": "/v1/dead-letters",
}
"""A concrete URL per route template, always aimed at TARGET's data."""

LISTS = {"/v1/icbs", "/v1/freshness", "/v1/alerts", "/v1/dead-letters"}
"""Routes that answer any in-scope token with only what it may see (others' rows left
out), rather than refusing."""
STREAMS = {"/v1/alerts/stream"}
CATALOGUE = {"/v1/indicators"}
"""Metadata with no data of any area: every role but public may read it."""
NATIONAL_ONLY = {"/v1/audit"}
BENCHMARK = {"/v1/england/indicators/{indicator}"}
"""England's totals: the benchmark every ICB view carries, so ICB tokens may read them."""


def days() -> DayRows:
    """QOP day buckets for the series endpoint (values only need to exist)."""
    rng = random.Random(7)
    return DayRows(
        {
            (TARGET, TODAY - d * DAY_MS): [rng.randint(20, 40) for _ in GAP_FIELDS]
            for d in range(1, 40)
        }
    )


def _alert(alert_id: str, labels: dict[str, str]) -> AlertEvent:
    return AlertEvent(
        id=alert_id,
        change="new",
        state="firing",
        labels=labels,
        annotations={"summary": alert_id},
        starts_ms=NOW - 60_000,
        ends_ms=None,
        at_ms=NOW - 60_000,
    )


ALERTS = [
    _alert(
        f"gap:{icb}:ed_attendance_rate:imd_quintile:sii",
        {
            "alertname": "GapWidening",
            "icb": icb,
            "indicator": "ed_attendance_rate",
            "breakdown": "imd_quintile",
            "measure": "sii",
        },
    )
    for icb in (TARGET, OTHER)
] + [
    _alert(f"feed:{trust}", {"alertname": "FeedStale", "trust": trust, "icb": icb})
    for trust, icb in ((TARGET_TRUST, TARGET), (OTHER_TRUST, OTHER))
]


class EndOfTestStream(Exception):
    """Ends the otherwise endless event stream (TestClient re-raises it to the test)."""


class Alerts:
    """The alert store's read side; a stream gives every alert once, then ends."""

    async def current(self) -> list[AlertEvent]:
        return list(ALERTS)

    async def last_change_id(self) -> str:
        return "0-0"

    async def changes_after(
        self, last_id: str, block_ms: int, count: int = 100
    ) -> list[tuple[str, AlertEvent]]:
        if last_id != "0-0":
            raise EndOfTestStream
        return [(f"{i + 1}-0", e) for i, e in enumerate(ALERTS)]


class Store(MemoryStore):
    async def freshness(self, now_ms: int) -> Any:
        from gapwatch.core.ports import FreshnessRow

        return {
            t: FreshnessRow(t, now_ms - 30_000, now_ms - 1_000, 12)
            for t in (TARGET_TRUST, OTHER_TRUST)
        }


@pytest.fixture(scope="module")
def app() -> Any:
    store = Store()
    for q in ("1", "2", "3", "4", "5"):
        for _ in range(12):
            store.add(NOW - 3_600_000, profile(q), ("ed_arrival",))
    settings = Settings(api={"versions_max_age_ms": 0}, auth={"rate_burst": 100_000})
    return create_app(
        settings,
        store,
        tiny_reference_data(),
        clock_ms=lambda: NOW,
        days=days(),
        alerts=Alerts(),  # type: ignore[arg-type]
    )


def protected_routes(app: Any) -> list[str]:
    """Every GET the app documents that needs a token (the OpenAPI schema lists the
    routes of included routers, which ``app.routes`` nests)."""
    paths = app.openapi()["paths"]
    return sorted(p for p, ops in paths.items() if is_protected(p) and "get" in ops)


def test_every_protected_route_is_in_the_table(app: Any) -> None:
    unknown = [p for p in protected_routes(app) if p not in URL_OF]
    assert not unknown, f"say how these routes are scoped in test_access.py: {unknown}"
    assert len(protected_routes(app)) >= 12


def _get(client: TestClient, path: str, headers: dict[str, str]) -> Any:
    url = URL_OF[path]
    if path in STREAMS:
        return _stream(client, url, headers)
    return client.get(url, headers=headers)


class _Streamed:
    def __init__(self, status_code: int, text: str, headers: dict[str, str]) -> None:
        self.status_code = status_code
        self.text = text
        self.headers = headers

    def json(self) -> Any:
        return json.loads(self.text)


def _stream(client: TestClient, url: str, headers: dict[str, str]) -> _Streamed:
    """Read a server-sent event stream until the test store ends it."""
    lines: list[str] = []
    status = 0
    got: dict[str, str] = {}
    try:
        with client.stream("GET", url, headers=headers) as response:
            status = response.status_code
            got = dict(response.headers)
            for line in response.iter_lines():
                lines.append(line)
    except EndOfTestStream:
        pass
    return _Streamed(status, "\n".join(lines), got)


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _bad_tokens() -> dict[str, str]:
    good = token("national", now_s=NOW_S)
    header, payload, signature = good.split(".")
    claims = jwt.decode(good, options={"verify_signature": False})
    icb = token("icb", icbs=(OTHER,), now_s=NOW_S)
    icb_claims = jwt.decode(icb, options={"verify_signature": False})
    base = {**claims, "iat": NOW_S, "exp": NOW_S + 3600}
    return {
        "expired": token("national", now_s=NOW_S - 7200, ttl_s=3600),
        "another key": jwt.encode(base, "x" * 48, algorithm="HS256"),
        "alg none": f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{payload}.",
        "tampered scope": ".".join(
            [header, _b64({**icb_claims, "icbs": [TARGET]}), icb.split(".")[2]]
        ),
        "another audience": jwt.encode({**base, "aud": "other"}, TEST_JWT_SECRET),
        "another issuer": jwt.encode({**base, "iss": "other"}, TEST_JWT_SECRET),
        "HS512 not accepted": jwt.encode(base, TEST_JWT_SECRET, algorithm="HS512"),
        "no role": jwt.encode({k: v for k, v in base.items() if k != "role"}, TEST_JWT_SECRET),
        "too long lived": jwt.encode({**base, "exp": NOW_S + 400 * 86_400}, TEST_JWT_SECRET),
        "not a jwt": "hello",
        "garbage": signature,
    }


BAD = _bad_tokens()


@pytest.mark.parametrize("kind", ["missing", "basic scheme", *BAD])
def test_missing_expired_and_forged_tokens_get_401_on_every_endpoint(app: Any, kind: str) -> None:
    client = TestClient(app)
    if kind == "missing":
        headers: dict[str, str] = {}
    elif kind == "basic scheme":
        headers = {"Authorization": "Basic dXNlcjpwYXNz"}
    else:
        headers = bearer(BAD[kind])
    for path in protected_routes(app):
        response = _get(client, path, headers)
        assert response.status_code == 401, (kind, path, response.text[:200])
        assert set(response.json()) == {"detail"}, (kind, path)
        assert response.headers.get("www-authenticate", "").startswith("Bearer"), path
        assert TARGET not in response.text or path.endswith("stream"), (kind, path)


def test_the_401_says_why(app: Any) -> None:
    client = TestClient(app)
    url = URL_OF["/v1/icbs/{icb}/indicators/{indicator}"]
    reasons = {
        kind: client.get(url, headers=bearer(t)).json()["detail"]
        for kind, t in BAD.items()
        if kind in ("expired", "another key", "alg none", "another audience")
    }
    assert reasons["expired"] == "token has expired"
    assert reasons["another key"] == "token signature does not verify"
    assert "algorithm" in reasons["alg none"]
    assert reasons["another audience"] == "token is for another audience"
    assert "bearer token" in client.get(url).json()["detail"]


def test_a_national_token_reads_every_endpoint(app: Any) -> None:
    """The control: the URLs are right, so the refusals below are about the token."""
    client = TestClient(app)
    headers = bearer(token("national", now_s=NOW_S))
    for path in protected_routes(app):
        response = _get(client, path, headers)
        if path == "/v1/dead-letters" and response.status_code == 503:
            continue  # no dead-letter reader in this app: tests/api/test_feed_scope.py
        if path == "/v1/audit" and response.status_code == 503:
            continue  # no audit log here: tests/integration/test_audit.py
        assert response.status_code == 200, (path, response.text[:300])
    sse = _get(client, "/v1/alerts/stream", headers).text
    assert all(a.id in sse for a in ALERTS)


def _scoped_client(app: Any, role: str, **codes: tuple[str, ...]) -> tuple[TestClient, str]:
    tok = token(role, now_s=NOW_S, **codes)  # type: ignore[arg-type]
    return TestClient(app, headers=bearer(tok)), tok


def _leaks(text: str) -> list[str]:
    """Marks of TARGET's data in a response."""
    marks = [TARGET, "Greater Manchester", TARGET_TRUST, "E54000057"]
    return [m for m in marks if m in text]


def test_an_icb_token_for_another_icb_sees_nothing_of_this_one(app: Any) -> None:
    client, _ = _scoped_client(app, "icb", icbs=(OTHER,))
    for path in protected_routes(app):
        response = _get(client, path, {})
        if path in LISTS or path in STREAMS:
            assert response.status_code in (200, 503), (path, response.text[:200])
            assert not _leaks(response.text), (path, _leaks(response.text))
        elif path in CATALOGUE or path in BENCHMARK:
            assert response.status_code == 200, path
        else:
            assert response.status_code == 403, (path, response.status_code, response.text)
            assert set(response.json()) == {"detail"}
            assert not _leaks(response.json()["detail"].replace(TARGET, "", 1)), path


def test_an_icb_token_sees_its_own_icb(app: Any) -> None:
    client, _ = _scoped_client(app, "icb", icbs=(TARGET,))
    assert [i["ods_code"] for i in client.get("/v1/icbs").json()] == [TARGET]
    body = client.get(URL_OF["/v1/icbs/{icb}/indicators/{indicator}"]).json()
    assert body["icb"] == TARGET and body["total"]["numerator"] == 60
    alerts = client.get("/v1/alerts").json()
    assert sorted(a["id"] for a in alerts) == [f"feed:{TARGET_TRUST}", ALERTS[0].id]
    sse = _get(client, "/v1/alerts/stream", {}).text
    assert ALERTS[0].id in sse and ALERTS[1].id not in sse and f"feed:{OTHER_TRUST}" not in sse
    assert client.get("/v1/alerts?icb=QHL").status_code == 403
    assert client.get("/v1/regions/Y62/indicators/ed_attendance_rate").status_code == 200


@pytest.mark.parametrize("role", ["trust", "public"])
def test_the_wrong_role_is_refused_indicators(app: Any, role: str) -> None:
    codes = {"trusts": (TARGET_TRUST,)} if role == "trust" else {}
    client, _ = _scoped_client(app, role, **codes)
    for path in protected_routes(app):
        response = _get(client, path, {})
        if role == "trust" and (path in LISTS or path in STREAMS or path in CATALOGUE):
            assert response.status_code in (200, 503), (path, response.text[:200])
            continue
        assert response.status_code == 403, (role, path, response.status_code)
        detail = response.json()["detail"]
        assert role in detail, detail
        assert "numerator" not in response.text


def test_a_trust_token_sees_only_its_own_feed(app: Any) -> None:
    client, _ = _scoped_client(app, "trust", trusts=(OTHER_TRUST,))
    alerts = client.get("/v1/alerts").json()
    assert [a["id"] for a in alerts] == [f"feed:{OTHER_TRUST}"]
    assert not _leaks(client.get("/v1/freshness").text)
    sse = _get(client, "/v1/alerts/stream", {}).text
    assert f"feed:{OTHER_TRUST}" in sse and not _leaks(sse)


def test_an_icb_token_may_not_read_the_audit_trail(app: Any) -> None:
    client, _ = _scoped_client(app, "icb", icbs=(TARGET,))
    response = client.get("/v1/audit")
    assert response.status_code == 403
    assert response.json()["detail"] == (
        "the audit trail needs a national token; this token's role is icb"
    )


def test_cached_answers_are_not_replayed_to_a_token_outside_their_area(app: Any) -> None:
    """The fast path answers repeated queries before routing: it must check scope too."""
    url = URL_OF["/v1/icbs/{icb}/indicators/{indicator}"]
    national = TestClient(app, headers=bearer(token("national", now_s=NOW_S)))
    first = national.get(url)
    assert first.status_code == 200
    assert national.get(url).content == first.content  # now cached
    other, _ = _scoped_client(app, "icb", icbs=(OTHER,))
    refused = other.get(url)
    assert refused.status_code == 403
    assert b"numerator" not in refused.content
    assert TestClient(app).get(url).status_code == 401


def test_a_token_that_was_good_is_refused_once_it_expires() -> None:
    """Verified tokens are remembered (an HMAC check per request is most of a cached
    answer's cost), but expiry is checked on every request."""
    clock = [NOW]
    app = create_app(
        Settings(api={"versions_max_age_ms": 0}),
        Store(),
        tiny_reference_data(),
        clock_ms=lambda: clock[0],
    )
    client = TestClient(app, headers=bearer(token("icb", icbs=(TARGET,), now_s=NOW_S, ttl_s=60)))
    url = URL_OF["/v1/icbs/{icb}/indicators/{indicator}"]
    assert client.get(url).status_code == 200
    clock[0] += 60_000 + 30_000  # at expiry plus the leeway: still good
    assert client.get(url).status_code == 200
    clock[0] += 1_000
    refused = client.get(url)
    assert refused.status_code == 401
    assert refused.json() == {"detail": "token has expired"}
