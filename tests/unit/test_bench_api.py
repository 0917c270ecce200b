"""scripts/bench_api.py: the wrk report parser, on wrk 4.1.0 output captured on the
2-core dev box, and the small pieces of the fill and the verdict."""

from __future__ import annotations

import asyncio
import importlib
import shutil
import socket
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"
sys.path.insert(0, str(SCRIPTS))  # bench_api imports bench_common by name, as when run
bench_api: Any = importlib.import_module("bench_api")

# wrk -t2 -c4 -d4s --latency against a local server where 1 path in 11 sleeps 1.5 s and
# 1 in 11 answers 404: latencies in us, ms and s in one report, and a Non-2xx line.
MIXED_UNITS = (
    "\n".join(
        [
            "Running 4s test @ http://127.0.0.1:18779",
            "  2 threads and 4 connections",
            "  Thread Stats   Avg      Stdev     Max   +/- Stdev",
            "    Latency   365.32ms  500.52ms   1.50s    80.10%",
            "    Req/Sec    64.33     79.56   190.00     83.33%",
            "  Latency Distribution",
            "     50%  250.00us",
            "     75%  700.91ms",
            "     90%    1.24s ",
            "     99%    1.50s ",
            "  121 requests in 4.01s, 7.88KB read",
            "  Non-2xx or 3xx responses: 12",
            "Requests/sec:     30.18",
            "Transfer/sec:      1.97KB",
            'GAPWATCH_WRK {"responses":121,"non_2xx":12,"non_2xx_by_status":{"404":'
            '12},"requests":121,"duration_us":4009308,"bytes":8070,"errors":{"conne'
            'ct":0,"read":0,"write":0,"status":12,"timeout":0},"latency_us":{"min":'
            '52,"mean":365324.4,"stdev":500519.4,"p50":250,"p75":700911,"p90":12351'
            '78,"p99":1502769,"p99_9":1503821,"max":1503821}}',
        ]
    )
    + "\n"
)

# wrk -t2 -c4 -d3s --timeout 1s: some requests time out (left out of the latencies).
TIMEOUTS = (
    "\n".join(
        [
            "Running 3s test @ http://127.0.0.1:18778",
            "  2 threads and 4 connections",
            "  Thread Stats   Avg      Stdev     Max   +/- Stdev",
            "    Latency    42.32ms   13.59ms  48.35ms   90.00%",
            "    Req/Sec    15.00     11.50    30.00     46.15%",
            "  Latency Distribution",
            "     50%   47.91ms",
            "     75%   48.03ms",
            "     90%   48.32ms",
            "     99%   48.35ms",
            "  28 requests in 3.01s, 4.33KB read",
            "  Socket errors: connect 0, read 0, write 0, timeout 8",
            "  Non-2xx or 3xx responses: 10",
            "Requests/sec:      9.32",
            "Transfer/sec:      1.44KB",
            'GAPWATCH_WRK {"responses":28,"non_2xx":10,"non_2xx_by_status":{"404":1'
            '0},"requests":28,"duration_us":3005395,"bytes":4438,"errors":{"connect'
            '":0,"read":0,"write":0,"status":10,"timeout":8},"latency_us":{"min":27'
            '17,"mean":42317.1,"stdev":13592.4,"p50":47914,"p75":48032,"p90":48322,'
            '"p99":48351,"p99_9":48351,"max":48351}}',
        ]
    )
    + "\n"
)

# wrk -t1 -c1 -d2s against a fast server: microseconds, "14.52k" requests/s per thread.
MICROSECONDS = (
    "\n".join(
        [
            "Running 2s test @ http://127.0.0.1:18779",
            "  1 threads and 1 connections",
            "  Thread Stats   Avg      Stdev     Max   +/- Stdev",
            "    Latency   224.06us  745.01us   9.01ms   94.42%",
            "    Req/Sec    14.52k     3.87k   17.36k    90.00%",
            "  Latency Distribution",
            "     50%   54.00us",
            "     75%   58.00us",
            "     90%  126.00us",
            "     99%    4.01ms",
            "  28906 requests in 2.00s, 1.82MB read",
            "Requests/sec:  14424.94",
            "Transfer/sec:      0.91MB",
            'GAPWATCH_WRK {"responses":28906,"non_2xx":0,"non_2xx_by_status":{},"re'
            'quests":28906,"duration_us":2003890,"bytes":1907796,"errors":{"connect'
            '":0,"read":0,"write":0,"status":0,"timeout":0},"latency_us":{"min":44,'
            '"mean":224.1,"stdev":745.0,"p50":54,"p75":58,"p90":126,"p99":4010,"p99'
            '_9":7978,"max":9008}}',
        ]
    )
    + "\n"
)

# wrk -t2 -c10 -d3s against `gapwatch api`: /healthz and an unknown ICB (404) in turn.
GAPWATCH_404 = (
    "\n".join(
        [
            "Running 3s test @ http://127.0.0.1:18902",
            "  2 threads and 10 connections",
            "  Thread Stats   Avg      Stdev     Max   +/- Stdev",
            "    Latency    22.42ms   12.04ms  93.16ms   73.01%",
            "    Req/Sec   228.62     95.28   646.00     81.67%",
            "  Latency Distribution",
            "     50%   19.93ms",
            "     75%   29.53ms",
            "     90%   35.97ms",
            "     99%   70.74ms",
            "  1372 requests in 3.02s, 230.89KB read",
            "  Non-2xx or 3xx responses: 685",
            "Requests/sec:    454.36",
            "Transfer/sec:     76.46KB",
            'GAPWATCH_WRK {"responses":1372,"non_2xx":685,"non_2xx_by_status":{"404'
            '":685},"requests":1372,"duration_us":3019599,"bytes":236434,"errors":{'
            '"connect":0,"read":0,"write":0,"status":685,"timeout":0},"latency_us":'
            '{"min":3695,"mean":22416.8,"stdev":12038.6,"p50":19935,"p75":29530,"p9'
            '0":35971,"p99":70740,"p99_9":92959,"max":93159}}',
        ]
    )
    + "\n"
)

# wrk -t1 -c2 -d1s against a server slower than the run: no request completed.
NO_REQUESTS = (
    "\n".join(
        [
            "Running 1s test @ http://127.0.0.1:18780",
            "  1 threads and 2 connections",
            "  Thread Stats   Avg      Stdev     Max   +/- Stdev",
            "    Latency     0.00us    0.00us   0.00us    -nan%",
            "    Req/Sec     0.00      0.00     0.00      -nan%",
            "  Latency Distribution",
            "     50%    0.00us",
            "     75%    0.00us",
            "     90%    0.00us",
            "     99%    0.00us",
            "  0 requests in 1.01s, 0.00B read",
            "Requests/sec:      0.00",
            "Transfer/sec:       0.00B",
            'GAPWATCH_WRK {"responses":0,"non_2xx":0,"non_2xx_by_status":{},"reques'
            'ts":0,"duration_us":1005408,"bytes":0,"errors":{"connect":0,"read":0,"'
            'write":0,"status":0,"timeout":0},"latency_us":{"min":-9223372036854775'
            '808,"mean":0.0,"stdev":0.0,"p50":0,"p75":0,"p90":0,"p99":0,"p99_9":0,"'
            'max":0}}',
        ]
    )
    + "\n"
)


def test_mixed_units_report() -> None:
    out = bench_api.parse_wrk(MIXED_UNITS)
    assert out["latency_ms"] == {
        "mean": pytest.approx(365.32),
        "stdev": pytest.approx(500.52),
        "max": pytest.approx(1500.0),
        "p50": pytest.approx(0.25),
        "p75": pytest.approx(700.91),
        "p90": pytest.approx(1240.0),
        "p99": pytest.approx(1500.0),
    }
    assert out["requests"] == 121
    assert out["duration_s"] == pytest.approx(4.01)
    assert out["bytes_read"] == round(7.88 * 1024)
    assert out["requests_per_s"] == pytest.approx(30.18)
    assert out["transfer_bytes_per_s"] == round(1.97 * 1024)
    assert out["thread_requests_per_s"]["max"] == pytest.approx(190.0)
    assert out["non_2xx_or_3xx"] == 12
    assert out["socket_errors"] == {"connect": 0, "read": 0, "write": 0, "timeout": 0}
    script = out["script"]
    assert script["non_2xx"] == 12
    assert script["non_2xx_by_status"] == {"404": 12}
    assert script["responses"] == script["requests"] == 121
    assert script["latency_us"]["p99_9"] == 1503821


def test_socket_errors_and_timeouts() -> None:
    out = bench_api.parse_wrk(TIMEOUTS)
    assert out["socket_errors"] == {"connect": 0, "read": 0, "write": 0, "timeout": 8}
    assert out["non_2xx_or_3xx"] == 10
    assert out["latency_ms"]["p99"] == pytest.approx(48.35)


def test_microseconds_and_metric_suffixes() -> None:
    out = bench_api.parse_wrk(MICROSECONDS)
    assert out["latency_ms"]["mean"] == pytest.approx(0.22406)
    assert out["latency_ms"]["p50"] == pytest.approx(0.054)
    assert out["latency_ms"]["p99"] == pytest.approx(4.01)
    assert out["thread_requests_per_s"]["mean"] == pytest.approx(14_520.0)
    assert out["bytes_read"] == round(1.82 * 1024**2)
    assert out["requests_per_s"] == pytest.approx(14_424.94)
    assert out["non_2xx_or_3xx"] == 0
    assert out["script"]["non_2xx"] == 0


def test_gapwatch_api_report_counts_404s() -> None:
    out = bench_api.parse_wrk(GAPWATCH_404)
    assert out["non_2xx_or_3xx"] == 685
    assert bench_api.non_2xx(out) == 685
    assert out["latency_ms"]["p99"] == pytest.approx(70.74)


@pytest.mark.parametrize(
    ("text", "ms"),
    [("834.00us", 0.834), ("12.34ms", 12.34), ("1.24s", 1240.0), ("1.00m", 60_000.0)],
)
def test_wrk_time_units(text: str, ms: float) -> None:
    assert bench_api.wrk_time_ms(text) == pytest.approx(ms)


def test_not_a_wrk_report() -> None:
    with pytest.raises(ValueError, match="Latency"):
        bench_api.parse_wrk("unable to connect to 127.0.0.1:1 Connection refused")


def _run(p99: float, non_2xx: int = 0, timeouts: int = 0) -> dict[str, Any]:
    return {
        "requests": 30_000,
        "latency_ms": {"p50": 5.0, "p99": p99},
        "requests_per_s": 1000.0,
        "socket_errors": {"connect": 0, "read": 0, "write": 0, "timeout": timeouts},
        "non_2xx_or_3xx": non_2xx,
        "script": {"non_2xx": non_2xx},
    }


def test_target_needs_p99_and_no_errors() -> None:
    assert bench_api.target_met(_run(50.0))
    assert not bench_api.target_met(_run(50.1))
    assert not bench_api.target_met(_run(10.0, non_2xx=1))
    assert not bench_api.target_met(_run(10.0, timeouts=1))
    assert not bench_api.target_met(None)


def test_ratios_to_baseline() -> None:
    run, base = _run(40.0), _run(8.0)
    run["requests_per_s"] = 250.0
    assert bench_api.ratios(run, base) == {"p50": 1.0, "p99": 5.0, "requests_per_s": 0.25}


def test_slices_keep_buckets_whole_and_flag_the_last() -> None:
    deltas = {
        ("d", i, "QOP"): Counter({f"f{j}": 1 for j in range(n)}) for i, n in enumerate([3, 3, 5, 1])
    }
    parts = list(bench_api.slices(deltas, 6))
    assert [len(p) for p, _ in parts] == [2, 2]
    assert [last for _, last in parts] == [False, True]
    assert {k for p, _ in parts for k in p} == set(deltas)
    assert list(bench_api.slices({}, 6)) == [({}, True)]


def test_in_process_topic_partitions_by_key_with_consecutive_offsets() -> None:
    topic = bench_api.InProcessTopic(12)
    delivered: list[object] = []
    for key in (b"RX1", b"RX1", b"R0A", b"RX1"):
        topic.produce("t", b"v", key, on_delivery=lambda e, _m: delivered.append(e), headers={})
    parts = [(m.partition, m.offset) for m in topic.take(10)]
    p1, p2 = parts[0][0], parts[2][0]
    assert [o for p, o in parts if p == p1][:3] == [0, 1, 2]
    assert parts[2] == (p2, 0 if p2 != p1 else 2)
    assert delivered == [None] * 4
    assert topic.pending == []


# ------------------------------------------------------------------ the Lua script
@pytest.fixture
def tiny_server() -> Iterator[str]:
    """An HTTP/1.1 server answering 404 for /missing* and 200 otherwise."""
    ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    missing = b"HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\nno"

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while line := await reader.readline():
            while (await reader.readline()) not in (b"\r\n", b""):
                pass
            writer.write(missing if line.split()[1].startswith(b"/missing") else ok)
            await writer.drain()
        writer.close()

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    loop = asyncio.new_event_loop()
    server = loop.run_until_complete(asyncio.start_server(handle, "127.0.0.1", port))
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}"
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    server.close()
    loop.close()


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed")
def test_lua_script_rotates_and_counts_non_2xx(tiny_server: str, tmp_path: Path) -> None:
    paths = tmp_path / "paths"
    paths.write_text("/a\n/b\n/missing\n/c\n")
    argv = ["wrk", "-t2", "-c4", "-d1s", "--latency", "-s", str(bench_api.LUA_SCRIPT)]
    done = subprocess.run(
        [*argv, tiny_server, "--", str(paths)], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    out = bench_api.parse_wrk(done.stdout)
    script = out["script"]
    assert script["responses"] == out["requests"] > 40
    # One path in four is /missing, so about a quarter of the responses are 404.
    assert script["non_2xx"] == script["non_2xx_by_status"]["404"] == out["non_2xx_or_3xx"]
    assert 0.15 < script["non_2xx"] / script["responses"] < 0.35


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed")
def test_lua_script_think_time_paces_each_connection(tiny_server: str, tmp_path: Path) -> None:
    paths = tmp_path / "paths"
    paths.write_text("/a\n")
    argv = ["wrk", "-t1", "-c2", "-d1s", "--latency", "-s", str(bench_api.LUA_SCRIPT)]
    done = subprocess.run(
        [*argv, tiny_server, "--", str(paths), "200"], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    # 2 connections pausing 200 ms on average before each request: ~10 requests in 1 s
    # (without the pause it would be thousands).
    assert 1 <= bench_api.parse_wrk(done.stdout)["requests"] <= 40


@pytest.fixture
def token_server() -> Iterator[tuple[str, list[bytes]]]:
    """An HTTP/1.1 server answering 200 only with ``Authorization: Bearer t0k.en.x``
    (401 otherwise); the Authorization values it saw."""
    ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    refused = b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 2\r\n\r\nno"
    seen: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await reader.readline():
            auth = b""
            while (line := await reader.readline()) not in (b"\r\n", b""):
                if line.lower().startswith(b"authorization:"):
                    auth = line.split(b":", 1)[1].strip()
            seen.append(auth)
            writer.write(ok if auth == b"Bearer t0k.en.x" else refused)
            await writer.drain()
        writer.close()

    loop = asyncio.new_event_loop()
    server = loop.run_until_complete(asyncio.start_server(handle, "127.0.0.1", 0))
    port = server.sockets[0].getsockname()[1]
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}", seen
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    server.close()
    loop.close()


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed")
def test_lua_script_sends_the_token_from_its_file(
    token_server: tuple[str, list[bytes]], tmp_path: Path
) -> None:
    url, seen = token_server
    paths, token = tmp_path / "paths", tmp_path / "token"
    paths.write_text("/v1/a\n/v1/b\n")
    token.write_text("t0k.en.x\n")
    cfg = bench_api.WrkConfig("wrk", 1, 2, 1, 0, 5, token_file=token)
    argv = cfg.argv(url, paths, 1)
    assert "t0k.en.x" not in " ".join(argv), "the token must not be on the command line"
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    out = bench_api.parse_wrk(done.stdout)
    assert out["script"]["responses"] > 10 and out["script"]["non_2xx"] == 0
    assert set(seen) == {b"Bearer t0k.en.x"}
    assert "t0k.en.x" not in done.stdout + done.stderr


def test_noisy_when_others_use_the_cpu_or_hold_redis() -> None:
    quiet = {"cpu_utilisation": {"other": 0.05}, "redis_ping_ms": {"max": 0.4}}
    assert not bench_api.is_noisy(quiet)
    assert bench_api.is_noisy({**quiet, "cpu_utilisation": {"other": 0.6}})
    assert bench_api.is_noisy({**quiet, "redis_ping_ms": {"max": 1600.0}})
    assert not bench_api.is_noisy({**quiet, "redis_ping_ms": {"n": 0}})


def test_a_run_without_requests_parses_and_never_meets_the_target() -> None:
    out = bench_api.parse_wrk(NO_REQUESTS)
    assert out["requests"] == 0
    assert out["latency_ms"]["p99"] == 0.0
    assert out["bytes_read"] == 0
    assert not bench_api.target_met(out)
