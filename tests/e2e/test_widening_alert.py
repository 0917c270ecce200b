"""The widening-gap scenario end to end: `gapwatch publish --scenario widening_gap`
through Kafka, the ingest worker and Redis to the alerter, which raises exactly the
expected alerts and delivers them over SSE (the API, with the token ``stack up`` issued),
to a webhook receiver, on its /metrics, and to a real Alertmanager (Debian's
prometheus-alertmanager), grouped and labelled by ICB and indicator."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

from gapwatch.devstack.alertmanager import alertmanager_binary, start_alertmanager
from gapwatch.settings import repo_root
from tests.conftest import need
from tests.e2e.conftest import stack_logs
from tests.stackenv import fast_alerter_env, stack_env, stack_headers

pytestmark = pytest.mark.integration

ROOT = repo_root()
INDICATOR = "emergency_admission_rate"
EXPECTED = {f"gap:QOP:{INDICATOR}:imd_quintile:{m}" for m in ("difference", "ratio", "sii")}


class Receiver:
    """A webhook receiver: every POSTed JSON body, in order."""

    def __init__(self) -> None:
        bodies: list[dict[str, Any]] = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802  # http.server's name
                length = int(self.headers.get("Content-Length", 0))
                bodies.append(json.loads(self.rfile.read(length)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *_: object) -> None:
                return

        self.bodies = bodies
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


@pytest.fixture()
def alertmanager() -> Iterator[str]:
    try:
        binary_found = alertmanager_binary().exists()
    except Exception:
        binary_found = False
    need(binary_found, "prometheus-alertmanager is not installed (apt install it; .ci/run does)")
    handle = start_alertmanager()
    yield handle.url
    handle.stop()


def _get_json(url: str, headers: dict[str, str] | None = None) -> Any:
    request = urllib.request.Request(url, headers=headers or {})  # noqa: S310  # local URL
    with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310  # local URL
        return json.loads(response.read())


def _read_topic(bootstrap: str, topic: str) -> list[tuple[str, dict[str, Any]]]:
    """Every message of the alerts topic (one partition) as (key, JSON value)."""
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "unused", "enable.partition.eof": True}
    )
    consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    out: list[tuple[str, dict[str, Any]]] = []
    deadline = time.monotonic() + 20
    try:
        while time.monotonic() < deadline:
            message = consumer.poll(1.0)
            if message is None:
                continue
            if message.error():
                if message.error().code() == KafkaError._PARTITION_EOF:
                    break
                raise AssertionError(message.error())
            out.append((message.key().decode(), json.loads(message.value())))
    finally:
        consumer.close()
    return out


def _wait(what: str, check: Any, timeout_s: float, logs: Path) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.5)
    pytest.fail(f"timed out waiting for {what}\n{stack_logs(logs)}")


def test_a_widening_gap_reaches_every_channel(
    broker: str, redis_url: str, namespace: str, tmp_path: Path, alertmanager: str
) -> None:
    receiver = Receiver()
    env = stack_env(broker, redis_url, namespace, tmp_path)
    env.update(fast_alerter_env(INDICATOR))
    env.update(
        {
            "GAPWATCH_ALERTS_WEBHOOK_URLS": json.dumps([receiver.url]),
            "GAPWATCH_ALERTS_ALERTMANAGER_URLS": json.dumps([alertmanager]),
        }
    )
    stack = [str(ROOT / "scripts" / "stack")]
    up = subprocess.run([*stack, "up"], env=env, capture_output=True, text=True, timeout=180)
    sse: list[tuple[str, dict[str, Any]]] = []
    try:
        assert up.returncode == 0, f"{up.stdout}\n{up.stderr}\n{stack_logs(tmp_path)}"
        api = f"http://127.0.0.1:{env['GAPWATCH_API_PORT']}"
        alerter = f"http://127.0.0.1:{env['GAPWATCH_ALERTS_PORT']}"
        headers = stack_headers(env)
        listening = threading.Event()

        def listen() -> None:
            try:
                url = f"{api}/v1/alerts/stream"
                with httpx.stream("GET", url, headers=headers, timeout=300) as response:
                    assert response.status_code == 200, response.read()
                    listening.set()
                    change = ""
                    for line in response.iter_lines():
                        if line.startswith("event: "):
                            change = line[7:]
                        elif line.startswith("data: "):
                            sse.append((change, json.loads(line[6:])))
            except httpx.HTTPError:
                return  # the stack stopped

        threading.Thread(target=listen, daemon=True).start()
        assert listening.wait(10)
        publish = subprocess.run(
            [
                sys.executable, "-m", "gapwatch", "publish",
                "--scenario", "widening_gap", "--icb", "QOP",
                "--backfill-days", "61", "--widen-from=-7d",
                "--count", "250000", "--mix", "admission=1", "--seed", "5",
            ],
            env=env, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert publish.returncode == 0, publish.stderr

        def firing_over_sse() -> set[str]:
            firing: dict[str, str] = {}
            for _, alert in sse:
                firing[alert["id"]] = alert["state"]
            return {i for i, state in firing.items() if state == "firing"}

        # The backfill is counted in seconds; the alerter then sees the finished days.
        _wait("the widening alerts over SSE", lambda: firing_over_sse() >= EXPECTED, 180, tmp_path)
        time.sleep(3)  # anything else would have been decided by now
        assert firing_over_sse() == EXPECTED, sse
        assert {a["id"] for change, a in sse if change == "new"} == EXPECTED
        listed = _get_json(f"{api}/v1/alerts?state=firing", headers)
        assert {a["id"] for a in listed} == EXPECTED
        latest = next(a for a in listed if a["measure"] == "difference")
        assert latest["detail"]["evidence"][-1]["point_type"] == "special_cause_concern"
        assert "QOP" in latest["icb"] and latest["summary"].startswith("Inequality gap widening")

        hooked = _wait(
            "the webhook",
            lambda: [b for b in receiver.bodies if b["status"] == "firing"],
            30,
            tmp_path,
        )
        assert hooked[0]["version"] == "4"
        hooked_ids = {
            a["labels"]["measure"]
            for b in receiver.bodies
            for a in b["alerts"]
            if a["status"] == "firing"
        }
        assert hooked_ids == {"difference", "ratio", "sii"}
        assert all(a["labels"]["icb"] == "QOP" for b in receiver.bodies for a in b["alerts"])

        topic = _read_topic(broker, env["GAPWATCH_KAFKA_ALERTS_TOPIC"])
        assert {key for key, change in topic if change["change"] == "new"} == EXPECTED
        assert all(change["labels"]["icb"] == "QOP" for _, change in topic)

        metrics = httpx.get(f"{alerter}/metrics").text
        for measure in ("difference", "ratio", "sii"):
            assert (
                f'gapwatch_gap_alert{{breakdown="imd_quintile",icb="QOP",indicator="{INDICATOR}",'
                f'measure="{measure}"}} 1.0'
            ) in metrics

        def groups() -> list[dict[str, Any]]:
            return [
                g
                for g in _get_json(f"{alertmanager}/api/v2/alerts/groups")
                if g["alerts"] and g["labels"].get("alertname") == "GapWidening"
            ]

        found = _wait("the alerts in Alertmanager", groups, 30, tmp_path)
        assert len(found) == 1, found
        assert found[0]["labels"] == {
            "alertname": "GapWidening",
            "icb": "QOP",
            "indicator": INDICATOR,
        }
        in_am = {a["labels"]["measure"] for a in found[0]["alerts"]}
        assert in_am == {"difference", "ratio", "sii"}
        assert all(a["status"]["state"] == "active" for a in found[0]["alerts"])
    finally:
        subprocess.run([*stack, "down"], env=env, timeout=60, capture_output=True)
        receiver.close()
