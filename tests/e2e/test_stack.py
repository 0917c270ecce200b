"""The whole path with real parts, driven from outside like a trust and an analyst:
``scripts/stack up`` -> a hand-built Avro producer (not gapwatch's library) -> Tansu ->
faust ingest -> Redis -> HTTP API (with the token ``stack up`` issued), and the
dead-letter topic read back. And ``stack up`` without a signing key: it makes one, keeps
it private and prints a national token and a dashboard URL that work."""

from __future__ import annotations

import io
import shutil
import struct
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import fastavro
import httpx
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from pydantic import SecretStr

from gapwatch.adapters.refdata_files import load_reference_data
from gapwatch.adapters.tokens import verify_token
from gapwatch.settings import AuthSettings, repo_root
from tests.conftest import need
from tests.e2e.conftest import stack_logs
from tests.stackenv import stack_env, stack_headers
from tests.tokens import bearer, token

pytestmark = pytest.mark.integration

ROOT = repo_root()
SCHEMAS = ROOT / "schemas"


@pytest.fixture(scope="module")
def qop_lsoas(real_refdata_dir: Path) -> dict[str, list[str]]:
    """Real LSOAs in Greater Manchester (QOP), five per national IMD quintile."""
    ref = load_reference_data(real_refdata_dir, with_population=False)
    by_quintile: dict[str, list[str]] = {}
    for code, area in sorted(ref.areas.items()):
        if area.icb == "QOP" and code == area.lsoa21:
            by_quintile.setdefault(str(area.imd_quintile), []).append(code)
    return {q: codes[:5] for q, codes in by_quintile.items()}


def _frame(schema_id: int, schema: Any, record: dict[str, Any]) -> bytes:
    buf = io.BytesIO()
    buf.write(struct.pack(">bI", 0, schema_id))
    fastavro.schemaless_writer(buf, schema, record)
    return buf.getvalue()


def _event(lsoa: str, now_ms: int, i: int) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()),
        "event_type": "ed_arrival",
        "occurred_at": now_ms - 1000 * (i % 600),
        "provider_code": "R0A",
        "dataset": "ECDS",
        "person_key": f"pk{i:06d}",
        "age_years": i % 90,
        "sex": "12"[i % 2],
        "ethnic_category": "AHMRZ"[i % 5],
        "lsoa_code": lsoa,
    }


def test_counts_reach_the_api_exactly_and_bad_messages_reach_the_dlq(stack, qop_lsoas):
    env = stack
    event_schema = fastavro.schema.load_schema(str(SCHEMAS / "gapwatch.events.EncounterEvent.avsc"))
    batch_schema = fastavro.schema.load_schema(str(SCHEMAS / "gapwatch.events.EncounterBatch.avsc"))
    topic = env["GAPWATCH_KAFKA_TOPIC"]
    # lz4, as trusts' producers commonly compress: the worker must read any Kafka codec.
    producer = Producer(
        {
            "bootstrap.servers": env["GAPWATCH_KAFKA_BOOTSTRAP"],
            "linger.ms": 5,
            "enable.idempotence": True,
            "compression.type": "lz4",
        }
    )
    now = time.time_ns() // 1_000_000
    expected: Counter[str] = Counter()
    events = []
    quintiles = sorted(qop_lsoas)
    for i in range(1000):
        q = quintiles[i % len(quintiles)]
        events.append(_event(qop_lsoas[q][i % len(qop_lsoas[q])], now, i))
        expected[q] += 1
    # 400 as single-event messages, 600 in batches of 100: both wire shapes.
    for e in events[:400]:
        producer.produce(topic, _frame(1, event_schema, e), key=b"R0A")
    for start in range(400, 1000, 100):
        batch = {"batch_id": None, "events": events[start : start + 100]}
        producer.produce(topic, _frame(2, batch_schema, batch), key=b"R0A")
    bad = _malformed(event_schema, now)
    for payload, _ in bad:
        producer.produce(topic, payload, key=b"R0A")
    assert producer.flush(15) == 0
    sent_at = time.monotonic()

    api = f"http://127.0.0.1:{env['GAPWATCH_API_PORT']}"
    numerators: dict[str, int] = {}
    with httpx.Client(base_url=api, headers=stack_headers(env), timeout=5) as client:
        while time.monotonic() - sent_at < 10:
            body = client.get(
                "/v1/icbs/QOP/indicators/ed_attendance_rate",
                params={"window": "24h", "by": "imd_quintile"},
            ).json()
            numerators = {g["group"]: g["numerator"] for g in body["groups"]}
            if sum(numerators.values()) >= 1000:
                break
            time.sleep(0.2)
        elapsed = time.monotonic() - sent_at
        assert numerators == {**{q: expected[q] for q in "12345"}, "unknown": 0}, elapsed
        assert elapsed < 10
        assert body["total"]["numerator"] == 1000
        assert all(g["value"] is not None and g["value"] > 0 for g in body["groups"][:5])
        eth = client.get(
            "/v1/icbs/QOP/indicators/ethnicity_unknown_proportion", params={"window": "24h"}
        ).json()
        assert eth["total"]["numerator"] == 200 and eth["total"]["denominator"] == 1000
        fresh = {r["provider_code"]: r for r in client.get("/v1/freshness").json()}
        assert fresh["R0A"]["events_last_hour"] == 1000
        api_metrics = client.get("/metrics").text

    letters = _read_dlq(env, expected=len(bad))
    assert sorted(r for r, _ in letters) == sorted(r for _, r in bad)
    assert {p for _, p in letters} == {p for p, _ in bad}  # original bytes untouched

    worker = f"http://127.0.0.1:{env['GAPWATCH_INGEST_WEB_PORT']}"
    worker_metrics = httpx.get(f"{worker}/metrics", timeout=5).text
    assert _metric(worker_metrics, "gapwatch_events_counted_total") == 1000
    assert _metric(worker_metrics, "gapwatch_dead_letters_total") == 20
    assert _metric(worker_metrics, "gapwatch_events_consumed_total") == 1020
    # The reconciliation read from Redis: every partition balances.
    assert _metric(worker_metrics, "gapwatch_partition_unbalanced") == 0
    consumed = [
        line
        for line in worker_metrics.splitlines()
        if line.startswith("gapwatch_partition_events{") and 'kind="consumed"' in line
    ]
    assert consumed and sum(float(line.rsplit(" ", 1)[1]) for line in consumed) == 1020
    reconcile = subprocess.run(
        [sys.executable, "-m", "gapwatch", "reconcile", "--require-data"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert reconcile.returncode == 0, reconcile.stderr
    _promtool_accepts(worker_metrics)
    _promtool_accepts(api_metrics)


def test_stack_up_without_a_key_makes_one_and_prints_a_working_dashboard_token(
    broker: str, redis_url: str, namespace: str, tmp_path: Path
) -> None:
    env = stack_env(broker, redis_url, namespace, tmp_path)
    del env["GAPWATCH_AUTH_JWT_SECRET"]
    command = [str(ROOT / "scripts" / "stack")]
    api = f"http://127.0.0.1:{env['GAPWATCH_API_PORT']}"
    key_file, token_file = tmp_path / "signing-key", tmp_path / "dev-token"
    started = time.monotonic()
    up = subprocess.run([*command, "up"], env=env, capture_output=True, text=True, timeout=180)
    try:
        assert up.returncode == 0, f"{up.stdout}\n{up.stderr}\n{stack_logs(tmp_path)}"
        up_s = time.monotonic() - started
        for path in (key_file, token_file):
            assert path.stat().st_mode & 0o777 == 0o600, f"{path} is not private"
        key = key_file.read_text().strip()
        dev_token = token_file.read_text().strip()
        assert len(key) >= 32
        lines = up.stdout.splitlines()
        assert dev_token in lines, up.stdout
        assert f"dashboard {api}/#token={dev_token}" in lines, up.stdout
        for text in (up.stdout, up.stderr, stack_logs(tmp_path)):
            assert key not in text
        principal = verify_token(
            AuthSettings(jwt_secret=SecretStr(key)), dev_token, int(time.time())
        )
        assert principal.role == "national"
        assert 12 * 3600 - 60 <= principal.expires_at_s - time.time() <= 12 * 3600

        with httpx.Client(base_url=api, timeout=5) as client:
            assert client.get("/v1/icbs").status_code == 401
            assert client.get("/v1/icbs", headers=bearer(token())).status_code == 401  # test key
            icbs = client.get("/v1/icbs", headers=bearer(dev_token))
            assert icbs.status_code == 200 and len(icbs.json()) == 42
            assert client.get("/").status_code == 200  # the dashboard page needs no token

        # Up again while it runs: the same key, a fresh token, and the old one still works.
        again = subprocess.run(
            [*command, "up"], env=env, capture_output=True, text=True, timeout=180
        )
        assert again.returncode == 0, again.stdout + again.stderr
        assert "re-attached" in again.stdout and "warning" not in again.stderr
        assert key_file.read_text().strip() == key
        second = token_file.read_text().strip()
        assert second != dev_token
        with httpx.Client(base_url=api, timeout=5) as client:
            for t in (dev_token, second):
                assert client.get("/v1/indicators", headers=bearer(t)).status_code == 200
        assert dev_token not in stack_logs(tmp_path) and second not in stack_logs(tmp_path)
        print(f"stack up without a key: {up_s:.1f} s")
    finally:
        subprocess.run([*command, "down"], env=env, timeout=60, capture_output=True)
    assert not token_file.exists(), "the token outlived the stack"
    assert key_file.read_text().strip() == key, "the key must survive `down` for the next `up`"


def _malformed(event_schema: Any, now: int) -> list[tuple[bytes, str]]:
    bad: list[tuple[bytes, str]] = []
    for i in range(5):
        bad.append((b"not avro at all %d" % i, "undecodable"))
        bad.append((struct.pack(">bI", 0, 99) + b"\x02\x04", "unknown_schema_id"))
        event = _event("E01005062", now, i)
        event["event_id"] = f"not-a-uuid-{i}"
        bad.append((_frame(1, event_schema, event), "invalid_field"))
        event = _event("E01005062", now, i)
        event["provider_code"] = ""
        bad.append((_frame(1, event_schema, event), "invalid_field"))
    return bad


def _read_dlq(env: dict[str, str], expected: int) -> list[tuple[str, bytes]]:
    consumer = Consumer(
        {
            "bootstrap.servers": env["GAPWATCH_KAFKA_BOOTSTRAP"],
            "group.id": f"dlq-reader-{uuid.uuid4().hex[:6]}",
            "enable.auto.commit": False,
        }
    )
    dlq = env["GAPWATCH_KAFKA_DLQ_TOPIC"]
    partitions = int(env["GAPWATCH_KAFKA_PARTITIONS"])
    consumer.assign([TopicPartition(dlq, p, 0) for p in range(partitions)])
    letters: list[tuple[str, bytes]] = []
    deadline = time.monotonic() + 20
    while len(letters) < expected and time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is None or msg.error():
            continue
        headers = {k: v.decode() for k, v in msg.headers()}
        assert headers["gapwatch.source_topic"] == env["GAPWATCH_KAFKA_TOPIC"]
        assert int(headers["gapwatch.source_offset"]) >= 0
        assert headers["gapwatch.error_detail"]
        letters.append((headers["gapwatch.reason"], msg.value()))
    consumer.close()
    assert len(letters) == expected
    return letters


def _metric(text: str, name: str) -> float:
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(name + "{") or line.startswith(name + " ")
    )


def _promtool_accepts(text: str) -> None:
    promtool = shutil.which("promtool")
    need(promtool is not None, "promtool not installed (Debian package 'prometheus')")
    assert promtool is not None
    check = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30
    )
    assert check.returncode == 0, check.stdout + check.stderr
