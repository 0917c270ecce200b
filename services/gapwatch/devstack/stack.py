"""``scripts/stack up|down|status``: the local stack in the background, idempotently.

Parts: Tansu broker (memory storage), Redis (only if none answers on the configured URL),
topics, one ingest worker, the API, the alerter. Logs and pid files live in the run directory
(``GAPWATCH_RUN_DIR``, default ``<repo>/run``). Ports come from ``GAPWATCH_KAFKA_BOOTSTRAP``,
``GAPWATCH_REDIS_URL`` and ``GAPWATCH_API_PORT``.

The API needs a token signing key: ``GAPWATCH_AUTH_JWT_SECRET`` if set, else one generated
for this stack and kept in the run directory (``signing-key``, 0600) across ``down`` and
``up``. ``up`` prints a national development token (12 h, from ``gapwatch token``) and the
dashboard URL carrying it in the fragment, and keeps it in ``dev-token`` (0600) for scripts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlparse

from gapwatch.adapters.alert_store import AlertStore
from gapwatch.adapters.kafka_admin import broker_answers, ensure_topics
from gapwatch.adapters.redis_store import RedisStore
from gapwatch.devstack.dev_tokens import (
    DEV_TOKEN_TTL,
    KEY_ENV,
    TOKEN_FILE,
    bearer,
    dashboard_url,
    issue_dev_token,
    remove_token,
    stack_signing_key,
    write_token,
)
from gapwatch.devstack.services import (
    redis_answers,
    start_redis,
    start_tansu,
    wait_for_port,
)
from gapwatch.settings import Settings, repo_root

__all__ = ["main"]

PARTS = ("tansu", "redis", "ingest", "api", "alerter")


def run_dir() -> Path:
    return Path(os.environ.get("GAPWATCH_RUN_DIR", repo_root() / "run"))


def _pid_path(part: str) -> Path:
    return run_dir() / f"{part}.pid"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def _running(part: str) -> int | None:
    path = _pid_path(part)
    if not path.exists():
        return None
    pid = int(path.read_text().strip() or 0)
    return pid if pid and _alive(pid) else None


def _spawn(part: str, argv: list[str], extra_env: Mapping[str, str] | None = None) -> int:
    log = run_dir() / "logs" / f"{part}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        argv,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env={**os.environ, **(extra_env or {})},
    )
    _pid_path(part).write_text(str(process.pid))
    return process.pid


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310  # local URL
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _accepts(url: str, token: str) -> bool | None:
    """Whether the API takes the token (None: it did not answer either way)."""
    request = urllib.request.Request(url, headers=bearer(token))  # noqa: S310  # local URL
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310  # local URL
            return bool(response.status == 200)
    except urllib.error.HTTPError as exc:
        return False if exc.code == 401 else None
    except (urllib.error.URLError, OSError):
        return None


def _wait_http(url: str, timeout_s: float, part: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if _http_ok(url):
            return
        pid = _running(part)
        if pid is None:
            log = run_dir() / "logs" / f"{part}.log"
            raise SystemExit(f"{part} exited during start-up; see {log}")
        time.sleep(0.25)
    raise SystemExit(f"{part} not ready at {url} after {timeout_s:.0f}s")


def _gapwatch() -> list[str]:
    return [sys.executable, "-m", "gapwatch"]


def up(settings: Settings) -> int:
    run_dir().mkdir(parents=True, exist_ok=True)
    key, key_source = stack_signing_key(run_dir(), os.environ)
    auth_env = {KEY_ENV: key}  # only the API (and `gapwatch token`) get the key
    fresh_broker = False
    port = settings.kafka.bootstrap.split(",")[0].rpartition(":")[2]
    if broker_answers(settings.kafka.bootstrap, timeout_s=1.0):
        print(f"kafka    already answering on {settings.kafka.bootstrap}")
    else:
        broker = start_tansu(int(port), run_dir() / "logs" / "tansu.log")
        _pid_path("tansu").write_text(str(broker.process.pid))
        print(f"kafka    started Tansu (memory storage) on {settings.kafka.bootstrap}")
        fresh_broker = True
    if redis_answers(settings.redis.url):
        print(f"redis    already answering on {settings.redis.url}")
    else:
        parsed = urlparse(settings.redis.url)
        server = start_redis(parsed.port or 6379, run_dir() / "logs" / "redis.log")
        _pid_path("redis").write_text(str(server.process.pid))
        print(f"redis    started on {settings.redis.url}")
    if fresh_broker:
        # A new in-memory broker has an empty log: counts, offsets and alerts left in Redis
        # by an earlier stack belong to a log that is gone, and would be counted again.
        asyncio.run(_start_over(settings))
        print(f"redis    namespace {settings.redis.namespace!r} emptied for the new broker")
    created = ensure_topics(settings.kafka)
    print(f"topics   {', '.join(created) or 'already exist'}")
    if _running("ingest") is None:
        _spawn("ingest", [*_gapwatch(), "ingest"])
    api_attached = _running("api") is not None
    if not api_attached:
        _spawn("api", [*_gapwatch(), "api"], auth_env)
    if _running("alerter") is None:
        _spawn("alerter", [*_gapwatch(), "alerter"])
    ingest_url = f"http://127.0.0.1:{settings.ingest.web_port}/readyz"
    api_url = f"http://127.0.0.1:{settings.api.port}"
    wait_for_port("127.0.0.1", settings.api.port, timeout_s=60)
    _wait_http(f"{api_url}/readyz", 60, "api")
    _wait_http(ingest_url, 90, "ingest")
    print(f"ingest   ready (health and metrics on http://127.0.0.1:{settings.ingest.web_port})")
    _wait_http(f"http://127.0.0.1:{settings.alerts.port}/metrics", 60, "alerter")
    print(f"alerter  metrics on http://127.0.0.1:{settings.alerts.port}/metrics")
    token = issue_dev_token({**os.environ, **auth_env})
    token_path = write_token(run_dir(), token)
    print(f"api      {api_url}/docs")
    print(f"logs     {run_dir() / 'logs'}")
    print(f"key      token signing key {key_source}")
    if _accepts(f"{api_url}/v1/indicators", token) is False:
        print(
            "warning  the API already running was started with another signing key, so "
            "this token will not work: run `scripts/stack down`, then `up` again",
            file=sys.stderr,
        )
    elif api_attached:
        print("api      already running: re-attached (same signing key)")
    print(f"token    national development token, valid {DEV_TOKEN_TTL} (also in {token_path}):")
    print(token)
    print(f"dashboard {dashboard_url(api_url, token)}", flush=True)
    return 0


async def _start_over(settings: Settings) -> None:
    counts = RedisStore.from_url(settings.redis.url, settings.redis.namespace)
    alerts = AlertStore.from_url(settings.redis.url, settings.redis.namespace)
    try:
        await counts.rebuild()
        await alerts.clear()
    finally:
        await counts.close()
        await alerts.close()


def down(settings: Settings) -> int:
    for part in reversed(PARTS):
        pid = _running(part)
        if pid is None:
            _pid_path(part).unlink(missing_ok=True)
            continue
        try:
            os.killpg(pid, signal.SIGTERM)
        except OSError:
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
        _pid_path(part).unlink(missing_ok=True)
        print(f"{part:8} stopped (pid {pid})")
    # The token goes with the stack; the signing key stays, for the next `up`.
    remove_token(run_dir())
    return 0


def status(settings: Settings) -> int:
    report: dict[str, dict[str, object]] = {}
    for part in PARTS:
        pid = _running(part)
        report[part] = {"pid": pid, "running": pid is not None}
    report["kafka_answers"] = {"ok": broker_answers(settings.kafka.bootstrap, timeout_s=1.0)}
    report["redis_answers"] = {"ok": redis_answers(settings.redis.url)}
    api = f"http://127.0.0.1:{settings.api.port}/readyz"
    report["api_ready"] = {"ok": _http_ok(api), "url": api}
    ingest = f"http://127.0.0.1:{settings.ingest.web_port}/readyz"
    report["ingest_ready"] = {"ok": _http_ok(ingest), "url": ingest}
    token_path = run_dir() / TOKEN_FILE
    report["dev_token"] = {"file": str(token_path), "exists": token_path.exists()}
    print(json.dumps(report, indent=2))
    healthy = report["api_ready"]["ok"] and report["ingest_ready"]["ok"]
    return 0 if healthy else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/stack", description=__doc__)
    parser.add_argument("action", choices=["up", "down", "status"])
    args = parser.parse_args(argv)
    settings = Settings()
    action = {"up": up, "down": down, "status": status}[args.action]
    return action(settings)


if __name__ == "__main__":
    sys.exit(main())
