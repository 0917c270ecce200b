"""Helpers shared by the benchmarks (``scripts/bench.py``, ``scripts/bench_api.py``).

Machine facts, CPU time from /proc, Prometheus scrapes and histogram quantiles, Redis
namespace clean-up, and API tokens for the API a benchmark starts. The benchmark scripts
import this module by name: ``python scripts/<bench>.py`` puts ``scripts/`` first on
``sys.path``.
"""

from __future__ import annotations

import json
import math
import os
import platform
import re
import shutil
import statistics
import subprocess
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import httpx
import redis

# Process start-up and HTTP readiness polling live in gapwatch.devstack.processes (the
# chaos harness uses them too); re-exported here for the benchmark scripts.
from gapwatch.devstack.dev_tokens import bearer, issue_for_env, write_token
from gapwatch.devstack.processes import StartupError
from gapwatch.devstack.processes import exit_on_sigterm as exit_on_sigterm
from gapwatch.devstack.processes import log_tail as log_tail
from gapwatch.devstack.processes import spawn as spawn
from gapwatch.devstack.processes import wait_http as wait_http
from gapwatch.settings import repo_root

Json = dict[str, Any]
Samples = list[tuple[str, dict[str, str], float]]

CLK_TCK = os.sysconf("SC_CLK_TCK")

UNLIMITED_RATE_ENV = {"GAPWATCH_AUTH_RATE_PER_S": "1000000", "GAPWATCH_AUTH_RATE_BURST": "1000000"}
"""For the API a benchmark starts: it measures what one process serves, so one token's
rate limit (20 requests a second) must not turn the load into 429s. The token is still
checked on every request, so its cost is in the numbers."""


def bench_api_env(env: Mapping[str, str]) -> dict[str, str]:
    """``isolated_env``'s environment (which holds a signing key of its own) for an API
    under load: no per-token rate limit."""
    return {**env, **UNLIMITED_RATE_ENV}


def bench_token(env: Mapping[str, str], subject: str) -> str:
    """A national token for the API started with ``env`` (never logged or printed)."""
    return issue_for_env(env, subject=subject, ttl_s=6 * 3600)


def bench_headers(env: Mapping[str, str], subject: str) -> dict[str, str]:
    return bearer(bench_token(env, subject))


def token_file(work: Path, token: str) -> Path:
    """The token in the run directory, mode 0600, for tools that read it from a file (wrk)."""
    return write_token(work, token)


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


class Deadline:
    """The whole run's time budget; every wait is capped by what is left of it."""

    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds

    def cap(self, seconds: float) -> float:
        return max(0.0, min(seconds, self.end - time.monotonic()))


class BenchError(StartupError):
    """The run could not be completed (a process died, something never became ready)."""


# ---------------------------------------------------------------- machine and processes
def machine_info() -> Json:
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.M)
    mem = re.search(r"^MemTotal:\s+(\d+) kB", Path("/proc/meminfo").read_text(), re.M)
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_model": model.group(1).strip() if model else platform.processor(),
        "memory_total_gib": round(int(mem.group(1)) / 1024**2, 1) if mem else None,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def gapwatch_commit() -> str | None:
    """``git rev-parse --short HEAD`` of the checkout, ``+dirty`` if tracked files
    changed; None without git."""
    git = shutil.which("git")
    if not git:
        return None
    head = subprocess.run(
        [git, "-C", str(repo_root()), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        timeout=10,
    ).stdout.strip()
    dirty = subprocess.run(
        [git, "-C", str(repo_root()), "status", "--porcelain", "--untracked-files=no"],
        capture_output=True,
        text=True,
        timeout=10,
    ).stdout.strip()
    return f"{head}{'+dirty' if dirty else ''}"


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU of one process, from /proc/<pid>/stat (fields 14 and 15)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def machine_busy_seconds() -> float:
    """CPU-seconds the whole machine has spent busy (all CPUs), from /proc/stat:
    user + nice + system + irq + softirq + steal."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


def status_mib(pid: int, key: str) -> float | None:
    """A ``kB`` line of /proc/<pid>/status (VmRSS, VmHWM) in MiB."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    found = re.search(rf"^{key}:\s+(\d+) kB", text, re.M)
    return round(int(found.group(1)) / 1024, 1) if found else None


def redis_cpu(client: redis.Redis) -> float:
    info: Any = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


# ---------------------------------------------------------------------- statistics
def quantiles_ms(values: list[float]) -> Json:
    if not values:
        return {"n": 0}
    ordered = sorted(values)

    def q(p: float) -> float:
        return round(ordered[min(len(ordered) - 1, math.ceil(p * len(ordered)) - 1)], 1)

    return {
        "n": len(ordered),
        "p50": q(0.50),
        "p95": q(0.95),
        "p99": q(0.99),
        "max": round(ordered[-1], 1),
        "mean": round(statistics.fmean(ordered), 1),
    }


# ---------------------------------------------------------------------- Prometheus
# Label values are quoted and may hold braces (route="/v1/icbs/{icb}/...").
_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[^"}]|"(?:[^"\\]|\\.)*")*\})?\s+(\S+)')


def scrape(url: str) -> Samples:
    """Prometheus text exposition -> (name, labels, value) samples."""
    text = httpx.get(url, timeout=10.0).text
    samples = []
    for line in text.splitlines():
        found = _SAMPLE.match(line)
        if found is None:
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', found.group(2) or ""))
        samples.append((found.group(1), labels, float(found.group(3))))
    return samples


def metric_sum(samples: Samples, name: str) -> float:
    return sum(v for n, _, v in samples if n == name)


def histogram(
    samples: Samples, name: str, where: Mapping[str, str] | None = None
) -> dict[float, float]:
    """Cumulative bucket counts by upper bound (``le``), summed over the series whose
    labels include ``where`` (all series when None)."""
    out: dict[float, float] = {}
    for n, labels, value in samples:
        if n != f"{name}_bucket":
            continue
        if where and any(labels.get(k) != v for k, v in where.items()):
            continue
        le = float(labels["le"])
        out[le] = out.get(le, 0.0) + value
    return out


def histogram_quantiles_ms(buckets: Mapping[float, float]) -> Json:
    """p50/p95/p99 by linear interpolation within buckets, as PromQL's
    histogram_quantile does (a value in the +Inf bucket reads as the largest bound)."""
    bounds = sorted(buckets)
    total = buckets.get(math.inf, 0.0)
    if total <= 0:
        return {"n": 0}
    out: Json = {"n": int(total)}
    for label, p in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99)):
        rank, lower, below = p * total, 0.0, 0.0
        value = bounds[-2] if len(bounds) > 1 else 0.0
        for bound in bounds:
            count = buckets[bound]
            if count >= rank:
                if math.isinf(bound):
                    break
                inside = count - below
                value = lower + (bound - lower) * ((rank - below) / inside if inside else 1.0)
                break
            lower, below = bound, count
        out[label] = round(value * 1000, 1)
    return out


# --------------------------------------------------------------------------- Redis
def namespace_keys(client: redis.Redis, namespace: str) -> list[str]:
    return list(client.scan_iter(match=f"gw:{{{namespace}}}:*", count=1000))


def clean_namespace(client: redis.Redis, namespace: str) -> int:
    keys = namespace_keys(client, namespace)
    for start in range(0, len(keys), 500):
        client.delete(*keys[start : start + 500])
    return len(keys)


def finish_run(
    result: dict[str, Any],
    rc: int,
    work: Path,
    keep_logs: bool,
    json_out: Path | None,
    log: Callable[[str], None],
) -> int:
    """The end of every benchmark: keep the logs (on failure or when asked) or delete
    the run directory, print the JSON (and write it to ``json_out``), log the summary."""
    result["machine"]["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    if rc or keep_logs:
        result["logs"] = str(work / "logs")
    else:
        shutil.rmtree(work, ignore_errors=True)
    text = json.dumps(result, indent=2)
    print(text)
    if json_out:
        json_out.write_text(text + "\n")
    for line in result["summary"]["lines"]:
        log(line)
    return rc
