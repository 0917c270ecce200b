"""Feed freshness and dead letters, scoped by token: national sees every trust, an ICB
token its ICBs' trusts, a trust token its own; public, missing, expired and forged
tokens see nothing. No response carries another trust's data or any letter's payload.

The dead-letter reader is a fake here (tests/integration/test_dead_letters_api.py reads
a real broker), except for one check that a broker nobody answers on gives a 503.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any

import jwt
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from gapwatch.adapters.dead_letter_reader import DeadLetterReader, Tail
from gapwatch.api.app import create_app
from gapwatch.core.errors import TransientError
from gapwatch.core.ports import FreshnessRow
from gapwatch.devstack.services import free_port
from gapwatch.ingest.dead_letters import DeadLetterRecord
from gapwatch.settings import Settings
from tests.api.conftest import NOW, NOW_S, MemoryStore
from tests.conftest import tiny_reference_data
from tests.tokens import bearer, token

OWN, OTHER = "R0A", "RRK"  # R0A is in ICB QOP, RRK in QHL (tests/conftest.py)
UNKNOWN = "RZZ9"
"""A key that names no trust in the reference data."""
POSTCODE = "M15 4AB"
"""In every fake letter's payload: it must never appear in an answer."""


class Store(MemoryStore):
    async def freshness(self, now_ms: int) -> Mapping[str, FreshnessRow]:
        return {
            t: FreshnessRow(t, now_ms - 30_000, now_ms - 1_000, 12) for t in (OWN, OTHER, UNKNOWN)
        }


def _letter(
    partition: int, offset: int, trust: str | None, reason: str, failed_at_ms: int
) -> DeadLetterRecord:
    return DeadLetterRecord(
        partition=partition,
        offset=offset,
        key=None if trust is None else trust.encode(),
        payload=f'{{"postcode": "{POSTCODE}", "provider": "{trust}"}}'.encode(),
        reason=reason,
        detail=f"{reason} in a message of {trust}",
        source_topic="gapwatch.encounters.v1",
        source_partition=partition + 4,
        source_offset=offset + 100,
        batch_index=None,
        service="gapwatch-ingest",
        failed_at_ms=failed_at_ms,
    )


LETTERS = (
    _letter(0, 0, OWN, "too_late", NOW - 50_000),
    _letter(0, 1, OWN, "invalid_field", NOW - 40_000),
    _letter(0, 2, OTHER, "undecodable", NOW - 30_000),
    _letter(1, 0, OWN, "too_late", NOW - 20_000),
    _letter(1, 1, OTHER, "too_late", NOW - 10_000),
    _letter(1, 2, None, "undecodable", NOW - 5_000),
    _letter(2, 0, UNKNOWN, "future_timestamp", NOW - 1_000),
)


class FakeReader:
    def __init__(self, letters: tuple[DeadLetterRecord, ...] = LETTERS) -> None:
        self.letters = letters
        self.error: TransientError | None = None
        self.reads = 0

    async def recent(self) -> Tail:
        self.reads += 1
        if self.error is not None:
            raise self.error
        return Tail(self.letters, per_partition=200, read_at_ms=NOW)


def _app(reader: Any = None) -> FastAPI:
    settings = Settings(api={"versions_max_age_ms": 0}, auth={"rate_burst": 100_000})
    return create_app(
        settings, Store(), tiny_reference_data(), clock_ms=lambda: NOW, dead_letters=reader
    )


@pytest.fixture()
def reader() -> FakeReader:
    return FakeReader()


@pytest.fixture()
def app(reader: FakeReader) -> FastAPI:
    return _app(reader)


def _client(app: FastAPI, role: str = "national", **codes: tuple[str, ...]) -> TestClient:
    return TestClient(app, headers=bearer(token(role, now_s=NOW_S, **codes)))  # type: ignore[arg-type]


def _trusts_in(body: Any) -> set[str | None]:
    rows = body["letters"] if isinstance(body, dict) else body
    return {r.get("trust", r.get("provider_code")) for r in rows}


# --- freshness ---------------------------------------------------------------------------


def test_a_national_token_sees_every_feed(app: FastAPI) -> None:
    rows = _client(app).get("/v1/freshness").json()
    assert sorted(r["provider_code"] for r in rows) == sorted([OWN, OTHER, UNKNOWN])


@pytest.mark.parametrize(("icb", "trust"), [("QOP", OWN), ("QHL", OTHER)])
def test_an_icb_token_sees_the_feeds_of_its_icbs_trusts(app: FastAPI, icb: str, trust: str) -> None:
    response = _client(app, "icb", icbs=(icb,)).get("/v1/freshness")
    assert response.status_code == 200
    assert [r["provider_code"] for r in response.json()] == [trust]


def test_a_trust_token_sees_only_its_own_feed(app: FastAPI) -> None:
    client = _client(app, "trust", trusts=(OWN,))
    response = client.get("/v1/freshness")
    assert [r["provider_code"] for r in response.json()] == [OWN]
    assert OTHER not in response.text and UNKNOWN not in response.text
    assert [r["provider_code"] for r in client.get("/v1/freshness?trust=r0a").json()] == [OWN]


def test_a_token_for_several_trusts_sees_each_of_them(app: FastAPI) -> None:
    rows = _client(app, "trust", trusts=(OWN, OTHER)).get("/v1/freshness").json()
    assert sorted(r["provider_code"] for r in rows) == sorted([OWN, OTHER])


def test_the_trust_filter_narrows_a_national_answer(app: FastAPI) -> None:
    rows = _client(app).get(f"/v1/freshness?trust={OTHER}").json()
    assert [r["provider_code"] for r in rows] == [OTHER]


@pytest.mark.parametrize("path", ["/v1/freshness", "/v1/dead-letters"])
def test_asking_for_another_trust_is_refused_with_a_message(app: FastAPI, path: str) -> None:
    response = _client(app, "trust", trusts=(OWN,)).get(f"{path}?trust={OTHER}")
    assert response.status_code == 403
    assert response.json() == {
        "detail": f"this token may not see trust {OTHER} (it covers trust {OWN})"
    }
    icb = _client(app, "icb", icbs=("QOP",)).get(f"{path}?trust={OTHER}")
    assert icb.status_code == 403
    assert icb.json()["detail"] == f"this token may not see trust {OTHER} (it covers ICB QOP)"


@pytest.mark.parametrize("path", ["/v1/freshness", "/v1/dead-letters"])
def test_an_unknown_trust_is_a_404_and_a_malformed_code_a_422(app: FastAPI, path: str) -> None:
    client = _client(app)
    unknown = client.get(f"{path}?trust=RQQ")
    assert unknown.status_code == 404
    assert unknown.json()["detail"] == "unknown trust RQQ: no trust with this ODS code"
    assert client.get(f"{path}?trust=R0A;drop").status_code == 422


# --- both endpoints: refusals ----------------------------------------------------------


@pytest.mark.parametrize("path", ["/v1/freshness", "/v1/dead-letters"])
def test_a_public_token_is_refused_with_a_message(app: FastAPI, path: str) -> None:
    response = _client(app, "public").get(path)
    assert response.status_code == 403
    detail = response.json()["detail"]
    what = "feed freshness" if path == "/v1/freshness" else "reading dead letters"
    assert detail.startswith(f"{what} needs a national or icb or trust token; "), detail
    assert detail.endswith("public"), detail
    assert OWN not in response.text


def _forged() -> str:
    """A trust token's claims widened to national and signed with another key."""
    real = token("trust", trusts=(OWN,), now_s=NOW_S)
    claims = jwt.decode(real, options={"verify_signature": False})
    return jwt.encode({**claims, "role": "national", "trusts": []}, "not-the-key-" * 4)


@pytest.mark.parametrize("path", ["/v1/freshness", "/v1/dead-letters"])
@pytest.mark.parametrize(
    ("headers", "why"),
    [
        ({}, "this endpoint needs a bearer token"),
        (bearer(token("national", now_s=NOW_S - 7200, ttl_s=3600)), "token has expired"),
        (bearer(_forged()), "token signature does not verify"),
        (
            bearer(token("trust", trusts=(OWN,), now_s=NOW_S)[:-4] + "AAAA"),
            "token signature does not verify",
        ),
    ],
    ids=["missing", "expired", "forged", "tampered"],
)
def test_missing_expired_and_forged_tokens_get_401(
    app: FastAPI, reader: FakeReader, path: str, headers: dict[str, str], why: str
) -> None:
    response = TestClient(app).get(path, headers=headers)
    assert response.status_code == 401
    assert response.json()["detail"].startswith(why)
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert OWN not in response.text and reader.reads == 0


def test_both_routes_document_401_403_and_429(app: FastAPI) -> None:
    paths = app.openapi()["paths"]
    for path in ("/v1/freshness", "/v1/dead-letters"):
        assert {"401", "403", "404", "429"} <= set(paths[path]["get"]["responses"]), path


# --- dead letters ---------------------------------------------------------------------------


def test_a_national_token_sees_every_letter_newest_first(app: FastAPI) -> None:
    body = _client(app).get("/v1/dead-letters").json()
    assert [(r["partition"], r["offset"]) for r in body["letters"]] == [
        (2, 0),
        (1, 2),
        (1, 1),
        (1, 0),
        (0, 2),
        (0, 1),
        (0, 0),
    ]
    assert body["matched"] == 7
    assert body["counts_by_reason"] == {
        "too_late": 3,
        "undecodable": 2,
        "future_timestamp": 1,
        "invalid_field": 1,
    }
    assert body["read_per_partition"] == 200
    assert body["letters"][1]["trust"] is None  # a letter without a key: national only


def test_a_letter_shows_its_headers_and_never_its_payload(app: FastAPI) -> None:
    response = _client(app, "trust", trusts=(OWN,)).get("/v1/dead-letters")
    newest = response.json()["letters"][0]
    assert newest == {
        "partition": 1,
        "offset": 0,
        "trust": OWN,
        "reason": "too_late",
        "detail": f"too_late in a message of {OWN}",
        "failed_at": "2024-10-04T10:29:40Z",
        "source_topic": "gapwatch.encounters.v1",
        "source_partition": 5,
        "source_offset": 100,
        "batch_index": None,
    }
    assert POSTCODE not in response.text and "payload" not in response.text


def test_a_trust_token_sees_only_its_own_letters_and_counts(app: FastAPI) -> None:
    response = _client(app, "trust", trusts=(OWN,)).get("/v1/dead-letters")
    body = response.json()
    assert _trusts_in(body) == {OWN}
    assert [(r["partition"], r["offset"]) for r in body["letters"]] == [(1, 0), (0, 1), (0, 0)]
    assert body["counts_by_reason"] == {"too_late": 2, "invalid_field": 1}
    assert OTHER not in response.text and UNKNOWN not in response.text
    assert "undecodable" not in response.text  # only the other trusts' reason


def test_a_trust_token_for_the_other_trust_sees_none_of_the_first(app: FastAPI) -> None:
    response = _client(app, "trust", trusts=(OTHER,)).get("/v1/dead-letters")
    assert _trusts_in(response.json()) == {OTHER}
    assert OWN not in response.text
    assert response.json()["counts_by_reason"] == {"too_late": 1, "undecodable": 1}


@pytest.mark.parametrize(("icb", "trust"), [("QOP", OWN), ("QHL", OTHER)])
def test_an_icb_token_sees_the_letters_of_its_trusts(app: FastAPI, icb: str, trust: str) -> None:
    response = _client(app, "icb", icbs=(icb,)).get("/v1/dead-letters")
    assert response.status_code == 200
    assert _trusts_in(response.json()) == {trust}
    assert UNKNOWN not in response.text


def test_filters_and_limit(app: FastAPI) -> None:
    client = _client(app)
    late = client.get("/v1/dead-letters?reason=too_late&limit=2").json()
    assert [(r["partition"], r["offset"]) for r in late["letters"]] == [(1, 1), (1, 0)]
    assert late["matched"] == 3
    assert sum(late["counts_by_reason"].values()) == 7  # the counts ignore reason and limit
    own = client.get(f"/v1/dead-letters?trust={OWN}").json()
    assert _trusts_in(own) == {OWN} and own["counts_by_reason"] == {
        "too_late": 2,
        "invalid_field": 1,
    }
    assert client.get("/v1/dead-letters?reason=nonsense").json()["letters"] == []
    assert client.get("/v1/dead-letters?limit=0").status_code == 422
    assert client.get("/v1/dead-letters?limit=501").status_code == 422
    assert client.get("/v1/dead-letters?limit=500").status_code == 200


def test_without_a_reader_the_endpoint_says_it_is_not_configured() -> None:
    app = _app(None)
    response = _client(app).get("/v1/dead-letters")
    assert response.status_code == 503
    assert response.json() == {
        "detail": "dead letters are not available: no dead-letter reader configured"
    }
    assert _client(app, "public").get("/v1/dead-letters").status_code == 403


def test_a_reader_that_cannot_reach_the_broker_gives_503(app: FastAPI, reader: FakeReader) -> None:
    reader.error = TransientError("kafka unavailable: connection refused")
    response = _client(app, "trust", trusts=(OWN,)).get("/v1/dead-letters")
    assert response.status_code == 503
    assert response.json() == {
        "detail": "temporarily unavailable: kafka unavailable: connection refused"
    }


def test_a_broker_nobody_answers_on_gives_503_quickly() -> None:
    reader = DeadLetterReader.kafka(f"127.0.0.1:{free_port()}", "t.dlq", timeout_s=1.0)
    client = _client(_app(reader))
    started = time.monotonic()
    response = client.get("/v1/dead-letters")
    assert response.status_code == 503
    assert response.json()["detail"].startswith("temporarily unavailable: ")
    assert time.monotonic() - started < 5
    again = time.monotonic()
    assert client.get("/v1/dead-letters").status_code == 503
    assert time.monotonic() - again < 0.5  # the failure is cached for a few seconds


# --- the reader's cache --------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_reader_reads_once_per_cache_period() -> None:
    reads: list[int] = []

    def read() -> Tail:
        reads.append(1)
        return Tail(LETTERS, 200, NOW + len(reads))

    clock = Clock()
    reader = DeadLetterReader(read, cache_s=5.0, monotonic=clock)

    async def scenario() -> list[Tail]:
        together = await asyncio.gather(*(reader.recent() for _ in range(5)))
        clock.now += 4.9
        cached = await reader.recent()
        clock.now += 0.2
        return [*together, cached, await reader.recent()]

    tails = asyncio.run(scenario())
    assert len(reads) == 2
    assert {t.read_at_ms for t in tails[:6]} == {NOW + 1} and tails[6].read_at_ms == NOW + 2


def test_the_reader_keeps_a_failure_as_long_as_an_answer() -> None:
    calls: list[int] = []

    def read() -> Tail:
        calls.append(1)
        raise TransientError("kafka unavailable: timed out")

    clock = Clock()
    reader = DeadLetterReader(read, cache_s=5.0, monotonic=clock)

    async def scenario() -> None:
        for _ in range(3):
            with pytest.raises(TransientError, match="timed out"):
                await reader.recent()
        clock.now += 5.0
        with pytest.raises(TransientError):
            await reader.recent()

    asyncio.run(scenario())
    assert len(calls) == 2


def test_a_read_slower_than_the_timeout_is_a_transient_error() -> None:
    def read() -> Tail:
        time.sleep(0.3)
        return Tail((), 1, NOW)

    reader = DeadLetterReader(read, timeout_s=0.05)
    with pytest.raises(TransientError, match="no answer within"):
        asyncio.run(reader.recent())


def test_the_tail_size_is_bounded() -> None:
    with pytest.raises(ValueError, match="per_partition"):
        DeadLetterReader.kafka("127.0.0.1:9092", "t.dlq", per_partition=100_000)
