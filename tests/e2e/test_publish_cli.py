"""A trust testing its feed: ``gapwatch topics create`` then ``gapwatch publish
--from-file`` against a real broker. Valid lines are sent, bad lines are reported by
number and reason, and the exit code says some were rejected."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition

from gapwatch.adapters.avro_codec import AvroCodec
from tests.stackenv import stack_env

pytestmark = pytest.mark.integration


def _gapwatch(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gapwatch", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_feed_file_is_checked_line_by_line_and_valid_lines_are_sent(
    broker: str, redis_url: str, namespace: str, tmp_path: Path, codec: AvroCodec
) -> None:
    env = stack_env(broker, redis_url, namespace, tmp_path)
    created = _gapwatch("topics", "create", env=env)
    assert created.returncode == 0, created.stderr
    again = _gapwatch("topics", "create", env=env)  # idempotent
    assert again.returncode == 0, again.stderr

    now = time.time_ns() // 1_000_000
    good_ids = [str(uuid.uuid4()) for _ in range(3)]
    base = {
        "event_type": "outpatient_appointment",
        "provider_code": "R0A",
        "dataset": "OPA",
        "person_key": "a1b2c3",
        "sex": "1",
        "attendance_status": "3",
        "lsoa_code": "E01005062",
    }
    lines = [
        json.dumps({**base, "event_id": good_ids[0], "occurred_at": now - 60_000}),
        json.dumps({**base, "event_id": good_ids[1], "occurred_at": "2026-01-05T09:30:00+00:00"}),
        "{not json",
        json.dumps({**base, "event_id": "nope", "occurred_at": now}),
        json.dumps({**base, "event_id": good_ids[2], "occurred_at": now, "age_years": 71}),
    ]
    feed = tmp_path / "feed.jsonl"
    feed.write_text("\n".join(lines) + "\n")

    checked = _gapwatch("publish", "--from-file", str(feed), "--check-only", env=env)
    assert checked.returncode == 1
    sent = _gapwatch("publish", "--from-file", str(feed), "--batch-size", "1", env=env)
    assert sent.returncode == 1, sent.stderr  # some lines were rejected
    summary = json.loads(sent.stdout.strip().splitlines()[-1])
    assert summary["valid_lines"] == 3 and summary["rejected_lines"] == 2
    assert summary["delivered"] == 3 and summary["failed"] == 0
    assert sorted(r["line"] for r in summary["rejections"]) == [3, 4]
    assert {r["reason"] for r in summary["rejections"]} == {"invalid_json", "invalid_field"}

    consumer = Consumer({"bootstrap.servers": broker, "group.id": f"reader-{uuid.uuid4().hex[:6]}"})
    topic = env["GAPWATCH_KAFKA_TOPIC"]
    consumer.assign([TopicPartition(topic, p, 0) for p in range(4)])
    received: list[str] = []
    deadline = time.monotonic() + 20
    while len(received) < 3 and time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is None or msg.error():
            continue
        assert msg.key() == b"R0A"
        received.extend(e["event_id"] for e in codec.decode(msg.value()).events)
    consumer.close()
    assert sorted(received) == sorted(good_ids)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--scenario", "widening_gap", "--widen-icb", "QXX"], "'QXX' is not an ICB ODS code"),
        (["--scenario", "widening_gap", "--icb", "qxx"], "--icb 'QXX' is not an ICB ODS code"),
        (["--icb", "QXX"], "unknown ICB ODS codes: QXX"),
        (["--scenario", "widening_gap", "--icb", "QOP", "--widen-from", "yesterday"], "-7d"),
        (["--scenario", "widening_gap", "--icb", "QOP", "--widen-from", "2026-02-30"], "-7d"),
        (["--scenario", "widening_gap"], "--widen-icb"),
        (["--scenario", "widening_gap", "--icb", "QOP", "--icb", "QWO"], "--widen-icb"),
        (["--scenario", "widening_gap", "--icb", "QOP", "--widen-icb", "QWO"], "not among"),
        (["--scenario", "widening_gap", "--icb", "QOP", "--widen-per-day", "0"], "per day"),
        (
            ["--scenario", "widening_gap", "--icb", "QOP", "--widen-activity", "ed,x"],
            "ed,emergency",
        ),
        (["--widen-icb", "QOP"], "only apply to --scenario widening_gap"),
    ],
)
def test_a_bad_widening_is_a_configuration_error_that_says_what_to_use(
    broker: str, redis_url: str, namespace: str, tmp_path: Path, flags: list[str], message: str
) -> None:
    env = stack_env(broker, redis_url, namespace, tmp_path)
    result = _gapwatch("publish", "--backfill-days", "1", "--count", "10", *flags, env=env)
    assert result.returncode == 2, result.stderr
    assert "configuration error" in result.stderr and message in result.stderr, result.stderr
    if "ICB ODS code" in message:
        assert "e.g. QOP" in result.stderr or "looks like QOP" in result.stderr


def test_a_widening_backfill_sends_the_extra_quintile_1_patients(
    broker: str, redis_url: str, namespace: str, tmp_path: Path, codec: AvroCodec
) -> None:
    env = stack_env(broker, redis_url, namespace, tmp_path)
    assert _gapwatch("topics", "create", env=env).returncode == 0
    args = ["--backfill-days", "9", "--count", "3000", "--seed", "3", "--icb", "QOP"]
    sent = _gapwatch(
        "publish", *args, "--scenario", "widening_gap", "--widen-per-day", "0.5",
        "--newest-first", env=env,
    )  # fmt: skip
    assert sent.returncode == 0, sent.stderr
    summary = json.loads(sent.stdout.strip().splitlines()[-1])
    assert summary["scenario"] == "widening_gap"
    assert summary["widening"]["icb"] == "QOP"
    assert summary["widening"]["per_day"] == 0.5
    assert summary["widening"]["activities"] == ["ed", "emergency"]
    week_ago = datetime.now(UTC).date() - timedelta(days=7)  # "-7d"; +-1 around midnight
    assert summary["widening"]["from"] in {
        (week_ago + timedelta(days=d)).isoformat() for d in (-1, 0, 1)
    }
    # ~2,500 draws fall in the 7.x widened days, a third of them QOP quintile 1 ED or
    # emergency, each with ~1.6 extra patients on average (1.5x, 2x, 2.5x, then 3x).
    assert 3800 < summary["delivered"] == summary["sent"] < 5500
    assert summary["failed"] == 0

    stable = _gapwatch("publish", *args, env=env)
    assert stable.returncode == 0, stable.stderr
    assert json.loads(stable.stdout.strip().splitlines()[-1])["delivered"] == 3000
