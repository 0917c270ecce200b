"""One scenario's private stack: Tansu, a Redis server, ingest workers, maybe the API.

Everything is the scenario's own: a broker on a free port (``memory://``, or ``s3://``
on a local moto server when the broker itself is to crash), a redis-server on a free
port (so flushing, killing or freezing it never touches the machine's Redis at 6379),
and workers and API in an isolated environment (own topic, group, namespace, ports).
``close`` stops it all, in reverse order; the context manager calls it on any exit.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import redis

from gapwatch.adapters.kafka_admin import ensure_topics
from gapwatch.devstack.dev_tokens import bearer, issue_for_env
from gapwatch.devstack.object_store import ObjectStore, start_object_store
from gapwatch.devstack.processes import spawn, wait_http
from gapwatch.devstack.services import (
    ManagedProcess,
    free_port,
    isolated_env,
    start_redis,
    start_tansu,
)
from gapwatch.settings import KafkaSettings

__all__ = ["ChaosStack", "Worker"]


class Worker:
    def __init__(self, name: str, web_port: int, process: ManagedProcess) -> None:
        self.name = name
        self.web_port = web_port
        self.process = process
        self.expected_exit = False
        """Set when the harness stops it: any other exit is a failure of the worker."""

    @property
    def alive(self) -> bool:
        return self.process.process.poll() is None


class ChaosStack:
    def __init__(self, work: Path, name: str, *, partitions: int, s3: bool = False) -> None:
        self.work = work
        self.logs = work / "logs"
        self.name = name
        self.partitions = partitions
        self._s3 = s3
        self._procs: list[ManagedProcess] = []
        self.store: ObjectStore | None = None
        self.workers: list[Worker] = []
        self.api: ManagedProcess | None = None
        self.env: dict[str, str] = {}
        self._token: str | None = None
        self.topic = f"chaos-{name}.encounters"
        self.dlq_topic = f"{self.topic}.dlq"
        self.namespace = f"chaos-{name}"
        self._redis_port = free_port()
        self._broker_port = free_port()
        self.redis: ManagedProcess | None = None
        self.broker: ManagedProcess | None = None
        self.client = redis.Redis(port=self._redis_port, decode_responses=True, socket_timeout=1.0)

    def __enter__(self) -> ChaosStack:
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _start(self) -> None:
        if self._s3:
            self.store = start_object_store(self.logs / "moto.log", bucket="chaos")
        self.start_redis()
        self.start_broker()
        self.env = isolated_env(
            self.bootstrap,
            f"redis://127.0.0.1:{self._redis_port}/0",
            self.namespace,
            self.work,
            topic=self.topic,
            partitions=self.partitions,
        )
        kafka = KafkaSettings(
            bootstrap=self.bootstrap,
            topic=self.topic,
            dlq_topic=self.dlq_topic,
            partitions=self.partitions,
        )
        ensure_topics(kafka)

    def close(self) -> None:
        for worker in self.workers:
            worker.expected_exit = True
        for proc in reversed(self._procs):
            proc.stop(10)
        if self.store is not None:
            self.store.stop()
        self.client.close()

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self._broker_port}"

    def _track(self, proc: ManagedProcess) -> ManagedProcess:
        self._procs.append(proc)
        return proc

    def start_redis(self) -> None:
        """A redis-server without persistence: restarting it empties it."""
        self.redis = self._track(start_redis(self._redis_port, self.logs / "redis.log"))

    def start_broker(self) -> None:
        storage = self.store.storage_url if self.store else "memory://tansu/"
        env = self.store.env if self.store else None
        log = self.logs / "tansu.log"
        self.broker = self._track(start_tansu(self._broker_port, log, storage, env))

    def start_worker(self) -> Worker:
        port = free_port()
        name = f"ingest-{len(self.workers) + 1}"
        argv = [sys.executable, "-m", "gapwatch", "ingest", "--web-port", str(port)]
        worker = Worker(name, port, self._track(spawn(name, argv, self.env, self.logs)))
        self.workers.append(worker)
        return worker

    def restart_worker(self, worker: Worker) -> None:
        """The same worker (name, port, log) as a new process."""
        argv = [sys.executable, "-m", "gapwatch", "ingest", "--web-port", str(worker.web_port)]
        worker.process = self._track(spawn(worker.name, argv, self.env, self.logs))
        worker.expected_exit = False

    def start_api(self, timeout_s: float = 120.0) -> None:
        self.api = self._track(
            spawn("api", [sys.executable, "-m", "gapwatch", "api"], self.env, self.logs)
        )
        url = f"{self.api_url}/readyz"
        wait_http(url, self.api, timeout_s, lambda r: r.status_code == 200)

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.env['GAPWATCH_API_PORT']}"

    def api_headers(self) -> dict[str, str]:
        """A national token for this stack's API (signed with the key in its env)."""
        if self._token is None:
            self._token = issue_for_env(self.env, subject=f"chaos:{self.name}")
        return bearer(self._token)

    @staticmethod
    def kill(proc: ManagedProcess) -> None:
        """SIGKILL: no clean-up, no goodbye to the broker or Redis."""
        proc.kill()

    def signal_redis(self, signum: signal.Signals) -> None:
        os.kill(self.redis_process.process.pid, signum)

    @property
    def redis_process(self) -> ManagedProcess:
        if self.redis is None:
            raise RuntimeError("the stack's Redis was never started")
        return self.redis

    @property
    def broker_process(self) -> ManagedProcess:
        if self.broker is None:
            raise RuntimeError("the stack's broker was never started")
        return self.broker

    def offsets(self) -> dict[int, int] | None:
        """Partition -> next offset stored in Redis; None while Redis does not answer."""
        try:
            stored: Any = self.client.hgetall(f"gw:{{{self.namespace}}}:offsets")
        except (redis.RedisError, OSError):
            return None
        prefix = f"{self.topic}:"
        return {
            int(str(k)[len(prefix) :]): int(v)
            for k, v in stored.items()
            if str(k).startswith(prefix)
        }

    def progress(self) -> int | None:
        """Messages the workers have stored as read: the sum of the next offsets (offsets
        start at 0, one per message)."""
        offsets = self.offsets()
        return None if offsets is None else sum(offsets.values())

    def assigned(self, worker: Worker) -> set[int]:
        """The partitions the worker's /readyz says it owns (none while it does not answer)."""
        answer = self.readyz(worker)
        return set(answer[1].get("assigned_partitions", [])) if answer else set()

    @staticmethod
    def readyz(worker: Worker) -> tuple[int, dict[str, Any]] | None:
        try:
            response = httpx.get(f"http://127.0.0.1:{worker.web_port}/readyz", timeout=2.0)
            body = response.json()
        except (httpx.HTTPError, ValueError):
            return None
        return response.status_code, body if isinstance(body, dict) else {}
