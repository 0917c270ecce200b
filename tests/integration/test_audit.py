"""The audit trail against real Redis: every non-public read recorded (who, role, what,
when, result), refusals included, readable by national tokens only, trimmed by age."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

import pytest
import redis
import redis.asyncio
from fastapi.testclient import TestClient

from gapwatch.adapters.audit_log import AuditLog, audit_key
from gapwatch.api.app import create_app
from gapwatch.core.audit import AuditEntry
from gapwatch.settings import Settings
from tests.api.conftest import MemoryStore, profile
from tests.conftest import tiny_reference_data
from tests.tokens import bearer, token

pytestmark = pytest.mark.integration

URL = "/v1/icbs/QOP/indicators/ed_attendance_rate"


def _app(redis_url: str, namespace: str, clock: list[int], retention_days: int = 90) -> Any:
    store = MemoryStore()
    for q in "12345":
        store.add(clock[0] - 3_600_000, profile(q), ("ed_arrival",))
    log = AuditLog.from_url(redis_url, namespace, retention_days)
    settings = Settings(
        redis={"url": redis_url, "namespace": namespace},
        audit={"retention_days": retention_days, "flush_interval_s": 0.05},
    )
    app = create_app(settings, store, tiny_reference_data(), clock_ms=lambda: clock[0], audit=log)
    return app, log


def test_every_non_public_read_is_recorded_with_who_what_when_and_result(
    redis_url: str, namespace: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gapwatch.audit")
    clock = [int(time.time() * 1000)]
    app, _ = _app(redis_url, namespace, clock)
    now_s = clock[0] // 1000
    analyst = token("icb", icbs=("QOP",), now_s=now_s, subject="analyst@qop.nhs.uk")
    intruder = token("icb", icbs=("QHL",), now_s=now_s, subject="someone@qhl.nhs.uk")
    national = token("national", now_s=now_s, subject="ig-lead@england.nhs.uk")
    with TestClient(app) as client:  # the lifespan runs the flusher
        assert client.get(URL, headers=bearer(analyst)).status_code == 200
        assert client.get(URL, headers=bearer(analyst)).status_code == 200  # cached path
        assert client.get(URL, headers=bearer(intruder)).status_code == 403
        assert client.get(URL).status_code == 401
        assert client.get(URL, headers=bearer(analyst + "x")).status_code == 401
        assert client.get("/v1/audit", headers=bearer(analyst)).status_code == 403
        assert client.get("/v1/public/icbs").status_code in (200, 404)  # never audited
        assert client.get("/healthz").status_code == 200  # never audited
        page = client.get("/v1/audit?limit=50", headers=bearer(national))
        assert page.status_code == 200, page.text
    entries = page.json()["entries"]
    # Newest first; the national read of the trail is recorded after it answers.
    seen = [(e["subject"], e["role"], e["path"], e["status"], e["outcome"]) for e in entries]
    assert seen == [
        ("analyst@qop.nhs.uk", "icb", "/v1/audit", 403, "refused"),
        ("anonymous", "none", URL, 401, "refused"),
        ("anonymous", "none", URL, 401, "refused"),
        ("someone@qhl.nhs.uk", "icb", URL, 403, "refused"),
        ("analyst@qop.nhs.uk", "icb", URL, 200, "allowed"),
        ("analyst@qop.nhs.uk", "icb", URL, 200, "allowed"),
    ]
    intruder_entry = entries[3]
    assert intruder_entry["scope"] == "icb:QHL"
    assert "may not see ICB QOP" in intruder_entry["reason"]
    assert entries[1]["reason"] == "token signature does not verify"
    assert entries[2]["reason"].startswith("this endpoint needs a bearer token")
    assert all(e["method"] == "GET" and e["client"] for e in entries)
    assert all(abs(_ms(e["at"]) - clock[0]) < 1000 for e in entries)
    # After the response: the trail now also holds the national read itself.
    raw: Any = redis.Redis.from_url(redis_url, decode_responses=True).xrange(audit_key(namespace))
    last = AuditEntry.from_fields(raw[-1][1])
    assert (last.subject, last.path, last.status) == ("ig-lead@england.nhs.uk", "/v1/audit", 200)
    assert len(raw) == 7
    # No token is ever stored.
    assert not any(analyst in v or national in v for _, f in raw for v in f.values())
    # Each entry is also logged at once, as one JSON line, without the token.
    logged = [json.loads(r.getMessage().removeprefix("audit ")) for r in caplog.records]
    assert [(e["subject"], e["status"]) for e in logged] == [
        (s, str(status)) for s, _, _, status, _ in reversed(seen)
    ] + [("ig-lead@england.nhs.uk", "200")]
    assert not any(analyst in r.getMessage() for r in caplog.records)


def _ms(iso_text: str) -> int:
    from gapwatch.api.timefmt import parse_iso_ms

    return parse_iso_ms(iso_text)


def test_the_trail_pages_back_and_filters(redis_url: str, namespace: str) -> None:
    clock = [int(time.time() * 1000)]
    app, _ = _app(redis_url, namespace, clock)
    now_s = clock[0] // 1000
    national = bearer(token("national", now_s=now_s, subject="ig"))
    analyst = bearer(token("icb", icbs=("QOP",), now_s=now_s, subject="a"))
    with TestClient(app) as client:
        for _ in range(5):
            client.get(URL, headers=analyst)
        client.get(URL)
        first = client.get("/v1/audit?limit=2&subject=a", headers=national).json()
        second = client.get(
            f"/v1/audit?limit=10&subject=a&before={first['next_before']}", headers=national
        ).json()
        refused = client.get("/v1/audit?outcome=refused", headers=national).json()
        bad = client.get("/v1/audit?before=nonsense", headers=national)
        oldest = client.get("/v1/audit?before=0-0", headers=national)
    assert len(first["entries"]) == 2 and len(second["entries"]) == 3
    ids = [e["id"] for e in first["entries"] + second["entries"]]
    assert ids == sorted(ids, key=lambda i: tuple(map(int, i.split("-"))), reverse=True)
    assert [e["subject"] for e in refused["entries"]] == ["anonymous"]
    assert bad.status_code == 422
    assert oldest.status_code == 200 and oldest.json()["entries"] == []  # schemathesis found a 503


def test_entries_older_than_the_retention_are_trimmed(redis_url: str, namespace: str) -> None:
    client = redis.asyncio.Redis.from_url(redis_url, decode_responses=True)
    log = AuditLog(client, namespace, retention_ms=400)

    def entry(subject: str) -> AuditEntry:
        return AuditEntry(0, subject, "icb", "icb:QOP", "GET", URL, "", 200, "127.0.0.1")

    async def run() -> list[str]:
        log.record(entry("old-1"))
        log.record(entry("old-2"))
        assert await log.flush() == 2
        await asyncio.sleep(0.6)  # past the retention, by Redis's clock
        log.record(entry("new"))
        assert await log.flush() == 1
        rows, _ = await log.read(limit=10)
        await log.close()
        return [e.subject for _, e in rows]

    assert asyncio.run(run()) == ["new"]


def test_entries_wait_in_memory_while_redis_is_down(namespace: str) -> None:
    log = AuditLog.from_url("redis://127.0.0.1:1/0", namespace, 90)
    log.record(AuditEntry(1, "s", "icb", "icb:QOP", "GET", URL, "", 200, "127.0.0.1"))

    async def run() -> int:
        written = await log.flush()
        await log.close()
        return written

    assert asyncio.run(run()) == 0
    assert len(log._pending) == 1  # kept for the next flush, and already in the log
