"""Every operation in the API's own OpenAPI schema, fuzzed by schemathesis in-process.

The schema is read from the app (``/openapi.json`` over ASGI), so a route added later is
tested too with no change here. The app is the in-memory one of ``conftest.py``, seeded
with counts, day buckets, alerts, dead letters and an audit trail so answers are not
empty, and real codes (ICBs, indicators, windows, ...) read from the app are mixed into
the generated values. A national token is added through schemathesis's auth hook.

Each operation gets the coverage phase's boundary and negative cases and
``MAX_EXAMPLES`` fuzzed cases (valid and invalid), each checked for: no 5xx and no
exception, a documented status code, content type, headers and body, invalid input
refused with a 4xx, valid input not refused except as an unknown code (404/422), and a
missing or bad token refused (``ignored_auth``).

The alert event stream (``/v1/alerts/stream``) never ends by itself; schemathesis reads
an event stream up to ``max-stream-events`` events (then cancels the app) or the request
timeout, so it is tested like the rest. The dashboard's pages are not in the schema
(tests/api/test_dashboard.py and test_hardening.py cover them).

The run's numbers (operations, cases, status codes, failures with a reproduction) are
printed and written to ``artifacts/schemathesis.json``. Findings already reported are
listed in ``KNOWN``: recorded there, not failed. ``GAPWATCH_SCHEMATHESIS_EXAMPLES`` and
``GAPWATCH_SCHEMATHESIS_SEED`` widen or vary a local run; CI uses the defaults.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import time
from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any, TypeAlias

import pytest
import schemathesis
from fastapi.testclient import TestClient
from schemathesis.checks import CheckFunction
from schemathesis.core.failures import Failure, FailureGroup
from schemathesis.specs.openapi import checks as openapi_checks

from gapwatch.adapters.dead_letter_reader import Tail
from gapwatch.api.app import create_app
from gapwatch.api.timefmt import iso
from gapwatch.core.alert_events import AlertEvent, State
from gapwatch.core.audit import AuditEntry
from gapwatch.core.indicators import CATALOGUE
from gapwatch.core.period_gaps import GAP_FIELDS
from gapwatch.core.refdata import ReferenceData
from gapwatch.core.windows import DAY_MS, HOUR_MS
from gapwatch.ingest.dead_letters import DeadLetterRecord
from gapwatch.settings import Settings, repo_root
from tests.api.conftest import NATIONAL, NOW, DayRows, MemoryStore, profile
from tests.conftest import tiny_reference_data

MAX_EXAMPLES = int(os.environ.get("GAPWATCH_SCHEMATHESIS_EXAMPLES", "30"))
"""Fuzzed cases per operation (on top of the examples and coverage phases)."""
SEED = int(os.environ.get("GAPWATCH_SCHEMATHESIS_SEED", "20251127"))
"""Fixed, so CI runs the same cases every time; vary it locally to look further."""
SUMMARY = repo_root() / "artifacts" / "schemathesis.json"
TODAY = NOW - NOW % DAY_MS

CHECKS: list[CheckFunction] = [
    schemathesis.checks.not_a_server_error,
    openapi_checks.status_code_conformance,
    openapi_checks.content_type_conformance,
    openapi_checks.response_schema_conformance,
    openapi_checks.response_headers_conformance,
    openapi_checks.negative_data_rejection,
    openapi_checks.positive_data_acceptance,
    openapi_checks.ignored_auth,
]
ACCEPTED_STATUSES = ["2xx", "401", "403", "404", "422", "429"]
"""What ``positive_data_acceptance`` lets a schema-valid request get. The schema types
codes, windows and dates as plain strings and the API checks them against the reference
data, so a well-formed but unknown value is a 404 (a path) or 422 (a query filter) by
design; a 400, 405 or 5xx would still be a finding."""

REJECTED_STATUSES = ["400", "401", "403", "404", "405", "406", "409", "414", "415", "422", "429"]
"""What ``negative_data_rejection`` accepts as refusing a schema-invalid request:
schemathesis's default list plus 414 (the guard refuses over-long URLs before any
parameter is parsed), and without its 5xx: a server error is never a refusal."""


@dataclass(frozen=True)
class Known:
    """A finding already reported and not yet fixed: recorded, not failed (set
    ``GAPWATCH_SCHEMATHESIS_STRICT=1`` to fail on it too). Remove it once fixed."""

    check: str
    status: int
    reason: str
    operation: str | None = None
    """None: any operation."""
    message: str = ""
    """A part of the failure's message that identifies it."""

    def matches(self, label: str, check: str, status: int, message: str) -> bool:
        return (
            self.check == check
            and self.status == status
            and self.operation in (None, label)
            and self.message in message
        )


CRASH = "Unhandled exception (a 500)"
"""How an exception out of the app is recorded (a real server would answer 500)."""
KNOWN: tuple[Known, ...] = ()
"""Empty: the undocumented 414 and the series' null limits it first found are fixed
(app-level guard responses; limits typed as nullable)."""
STRICT = os.environ.get("GAPWATCH_SCHEMATHESIS_STRICT", "") not in ("", "0")


def known(label: str, check: str, status: int, message: str) -> Known | None:
    if STRICT:
        return None
    return next((k for k in KNOWN if k.matches(label, check, status, message)), None)


Case: TypeAlias = schemathesis.Case[Any]


class Days(DayRows):
    """Day buckets of both ICBs for the gap series, 40 days back. Counts are consistent
    (a proportion's numerator never exceeds its denominator), as the ingest's atomic
    writes keep them, and vary from day to day and group to group, except that the
    black group's counts are the white group's: a constant ratio series (every moving
    range 0), an edge real small-area data reaches."""

    def __init__(self) -> None:
        denominators = {i.denominator for i in CATALOGUE.values() if i.denominator}

        def count(field: str, day: int) -> int:
            measure, _, group = field.rpartition("|")
            base = 40 if measure.partition("|")[0] in denominators else 5
            spread = sum(map(ord, "white" if group == "black" else group))
            return base + (day * 7 + spread) % 11

        super().__init__(
            {
                (icb, TODAY - d * DAY_MS): [count(f, d) for f in GAP_FIELDS]
                for icb in ("QOP", "QHL")
                for d in range(1, 40)
            }
        )


def _alert(alert_id: str, labels: dict[str, str], state: State = "firing") -> AlertEvent:
    return AlertEvent(
        id=alert_id,
        change="new" if state == "firing" else "resolved",
        state=state,
        labels=labels,
        annotations={"summary": alert_id, "rule": "above the upper limit"},
        starts_ms=NOW - 3 * HOUR_MS,
        ends_ms=None if state == "firing" else NOW - HOUR_MS,
        at_ms=NOW - HOUR_MS,
        detail={"points": [1, 2, 3]},
    )


GAP_STATES: tuple[tuple[str, State], ...] = (("QOP", "firing"), ("QHL", "resolved"))
ALERTS = [
    _alert(
        f"gap:{icb}:ed_attendance_rate:imd_quintile:sii",
        {
            "alertname": "GapWidening",
            "severity": "warning",
            "icb": icb,
            "indicator": "ed_attendance_rate",
            "breakdown": "imd_quintile",
            "measure": "sii",
        },
        state,
    )
    for icb, state in GAP_STATES
] + [
    _alert(f"feed:{trust}", {"alertname": "FeedStale", "trust": trust, "icb": icb})
    for trust, icb in (("R0A", "QOP"), ("RRK", "QHL"))
]


class Alerts:
    """The alert store's read side. The stream hands out every alert again on each read,
    so a filtered stream has events too; schemathesis stops reading after a few."""

    def __init__(self) -> None:
        self.serial = 0

    async def current(self) -> list[AlertEvent]:
        return list(ALERTS)

    async def last_change_id(self) -> str:
        return "0-0"

    async def changes_after(
        self, last_id: str, block_ms: int, count: int = 100
    ) -> list[tuple[str, AlertEvent]]:
        await asyncio.sleep(0.01)
        self.serial += 1
        return [(f"{self.serial}-{i}", e) for i, e in enumerate(ALERTS)]


class Audit:
    """The audit trail in memory: the guard records every protected request here."""

    retention_ms = 90 * DAY_MS

    def __init__(self) -> None:
        self.entries: list[tuple[str, AuditEntry]] = []

    def record(self, entry: AuditEntry) -> None:
        self.entries.append((f"{entry.at_ms}-{len(self.entries)}", entry))

    async def flush(self) -> int:
        return 0

    async def run(self, interval_s: float, stop: asyncio.Event) -> None:
        await stop.wait()

    async def read(
        self,
        *,
        limit: int,
        before: str | None = None,
        since_ms: int | None = None,
        subject: str | None = None,
        outcome: str | None = None,
    ) -> tuple[list[tuple[str, AuditEntry]], str | None]:
        def order(entry_id: str) -> tuple[int, int]:
            ms, _, seq = entry_id.partition("-")
            return int(ms), int(seq)

        found = [
            (i, e)
            for i, e in reversed(self.entries)
            if (before is None or order(i) < order(before))
            and (since_ms is None or e.at_ms >= since_ms)
            and (subject is None or e.subject == subject)
            and (outcome is None or e.outcome == outcome)
        ]
        page = found[:limit]
        return page, page[-1][0] if len(found) > limit else None


def _letter(offset: int, trust: str | None, reason: str) -> DeadLetterRecord:
    return DeadLetterRecord(
        partition=offset % 3,
        offset=offset,
        key=None if trust is None else trust.encode(),
        payload=b"never shown",
        reason=reason,
        detail=f"{reason}: event at the edge of the window",
        source_topic="gapwatch.encounters.v1",
        source_partition=offset % 3,
        source_offset=1000 + offset,
        batch_index=offset % 5,
        service="gapwatch-ingest",
        failed_at_ms=NOW - offset * 60_000,
    )


class DeadLetters:
    """The dead-letter topic's tail: letters of both trusts and one with no key."""

    async def recent(self) -> Tail:
        letters = tuple(
            _letter(i, trust, reason)
            for i, (trust, reason) in enumerate(
                [("R0A", "too_late"), ("RRK", "decode_error"), (None, "invalid")] * 4
            )
        )
        return Tail(letters=letters, per_partition=100, read_at_ms=NOW)


def seeded_store() -> MemoryStore:
    """Counts in both ICBs, every quintile, several ethnic groups, the last 30 days."""
    store = MemoryStore()
    measures = (
        ("ed_arrival",),
        ("emergency_admission",),
        ("outpatient_outcome", "outpatient_dna"),
        ("outpatient_outcome",),
    )
    for hours_ago in (1, 2, 5, 20, 30, 60, 200, 500, 700):
        for q in ("1", "2", "3", "4", "5"):
            for eth in ("white", "asian", "black"):
                store.add(NOW - hours_ago * HOUR_MS, profile(q, eth), measures[int(q) % 4])
    return store


class NationalToken:
    """Every case carries a national token (sees everything)."""

    def get(self, case: Case, ctx: schemathesis.AuthContext) -> str:
        return NATIONAL["Authorization"]

    def set(self, case: Case, data: str, ctx: schemathesis.AuthContext) -> None:
        case.headers["Authorization"] = data


@dataclass
class Tally:
    """What the run did, per operation: cases sent, status codes seen, failures."""

    cases: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    samples: dict[str, dict[str, str]] = field(default_factory=dict)
    """The first URL that got each status, per operation."""
    statuses: dict[str, dict[str, int]] = field(default_factory=dict)
    failures: dict[str, dict[str, dict[str, str]]] = field(default_factory=dict)
    known: dict[str, dict[str, dict[str, str]]] = field(default_factory=dict)

    def sent(self, label: str, status: int, seconds: float, url: str) -> None:
        self.cases[label] = self.cases.get(label, 0) + 1
        self.samples.setdefault(label, {}).setdefault(str(status), url)
        self.seconds[label] = self.seconds.get(label, 0.0) + seconds
        seen = self.statuses.setdefault(label, {})
        seen[str(status)] = seen.get(str(status), 0) + 1

    def failed(self, label: str, failure: Failure, case: Case, status: int) -> bool:
        """Record a failed check; True when it is a new finding (the test must fail)."""
        return self._record(label, failure.title, status, failure.message.strip(), case)

    def crashed(self, label: str, exc: Exception, case: Case) -> bool:
        """Record an exception out of the app; True when it is a new finding."""
        self.cases[label] = self.cases.get(label, 0) + 1
        return self._record(label, CRASH, 500, f"{type(exc).__name__}: {exc}", case)

    def _record(self, label: str, check: str, status: int, message: str, case: Case) -> bool:
        match = known(label, check, status, message)
        book = self.known if match else self.failures
        # Hypothesis shrinks a failure through many cases: keep the first of each kind.
        first_line = next(iter(message.splitlines()), "")
        book.setdefault(label, {}).setdefault(
            f"{check}|{status}|{first_line}",
            {"check": check, "status": str(status), "message": message}
            | {"reproduce": case.as_curl_command()}
            | ({"known": match.reason} if match else {}),
        )
        return match is None

    def summary(self) -> dict[str, Any]:
        return {
            "tool": f"schemathesis {schemathesis.__version__}",
            "seed": SEED,
            "max_examples": MAX_EXAMPLES,
            "checks": [c.__name__ for c in CHECKS],
            "operations": len(self.cases),
            "cases": sum(self.cases.values()),
            "failures": sum(len(f) for f in self.failures.values()),
            "known_failures": sum(len(f) for f in self.known.values()),
            "per_operation": {
                label: {
                    "cases": n,
                    "seconds": round(self.seconds[label], 2),
                    "statuses": dict(sorted(self.statuses[label].items())),
                    "first_url_per_status": dict(sorted(self.samples[label].items())),
                    "failures": list(self.failures.get(label, {}).values()),
                    "known_failures": list(self.known.get(label, {}).values()),
                }
                for label, n in sorted(self.cases.items())
            },
        }


@pytest.fixture(scope="module")
def tally(request: pytest.FixtureRequest) -> Iterator[Tally]:
    run = Tally()
    yield run
    summary = run.summary()
    SUMMARY.parent.mkdir(exist_ok=True)
    SUMMARY.write_text(json.dumps(summary, indent=2) + "\n")
    line = (
        f"schemathesis: {summary['operations']} operations, {summary['cases']} cases, "
        f"{summary['failures']} failures, {summary['known_failures']} known "
        f"(details in {SUMMARY.relative_to(repo_root())})"
    )
    # Straight to the terminal: a fixture's print is captured and shown only on failure.
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    with capture.global_and_fixture_disabled() if capture is not None else nullcontext():
        print("\n" + line, flush=True)


def dictionaries(app: Any, ref: ReferenceData) -> dict[str, Any]:
    """Real codes, read from the app itself, mixed into the generated values so that
    most cases reach past 'unknown ICB' into the statistics (the rest stay random)."""
    client = TestClient(app, headers=NATIONAL)
    icbs = client.get("/v1/icbs").json()
    catalogue = client.get("/v1/indicators").json()
    breakdowns = [b for i in catalogue for b in i["breakdowns"]]
    values = {
        "icb": sorted({i["ods_code"] for i in icbs} | {i["ons_code"] for i in icbs}),
        "region": sorted({i["region_ods_code"] for i in icbs}),
        "indicator": sorted({i["id"] for i in catalogue}),
        "by": sorted({b["id"] for b in breakdowns}),
        "group": sorted({g for b in breakdowns for g in b["groups"]}),
        "trust": sorted(ref.trusts),
        "window": ["1h", "24h", "7d", "28d", "90d"],
        "measure": ["difference", "ratio", "sii"],
        # Every start before every end (else a 422). Not the calendar's edges: a window
        # of thousands of years takes seconds to sum (reported; the parser should cap it).
        "start": [iso(NOW - d * DAY_MS) for d in (30, 7, 2)],
        "end": [iso(NOW - d * DAY_MS) for d in (1, 0)],
    }
    names = {name: name for name in values} | {"since": "start"}
    return {
        "dictionaries": {name: {"values": v} for name, v in values.items()},
        "parameters": {
            f"{location}.{param}": {"dictionary": name, "probability": 0.95}
            for param, name in names.items()
            for location in ("path", "query")
        },
    }


@pytest.fixture(scope="module")
def api_schema() -> Any:
    ref = tiny_reference_data()
    # Every read side the app can be given, in memory; offered only where create_app
    # takes it, so a port added or renamed later degrades to that route's 503, which
    # the run reports (then add a fake here).
    ports: dict[str, object] = {
        "days": Days(),
        "alerts": Alerts(),
        "audit": Audit(),
        "dead_letters": DeadLetters(),
    }
    accepted = inspect.signature(create_app).parameters
    app = create_app(
        # Every case carries the same token: without a large burst the fuzzing would
        # mostly test the rate limiter (test_hardening.py does that on its own). The
        # fewest SII repetitions the settings allow keep a case fast.
        Settings(
            api={"versions_max_age_ms": 0, "sii_repetitions": 1000},
            auth={"rate_burst": 1_000_000},
        ),
        seeded_store(),
        ref,
        clock_ms=lambda: NOW,
        broker_check=lambda: True,
        **{name: port for name, port in ports.items() if name in accepted},  # type: ignore[arg-type]
    )
    config = schemathesis.Config.from_dict(
        {
            "seed": SEED,
            # CI's two cores are shared with the rest of the suite: a slow draw is not a
            # finding, and must not fail the build as a health check.
            "suppress-health-check": ["too_slow", "filter_too_much"],
            "request-timeout": 5,
            "max-stream-events": 3,
            "generation": {"max-examples": MAX_EXAMPLES, "database": "none"},
            "checks": {
                "positive_data_acceptance": {"expected-statuses": ACCEPTED_STATUSES},
                "negative_data_rejection": {"expected-statuses": REJECTED_STATUSES},
            },
            **dictionaries(app, ref),
        }
    )
    loaded = schemathesis.openapi.from_asgi("/openapi.json", app, config=config)
    # Through schemathesis's auth hook, not a fixed header: then ignored_auth knows the
    # token is a real one, and checks that each operation refuses none and a bad one.
    loaded.auth()(NationalToken)
    return loaded


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
def test_every_operation_keeps_to_the_schema(case: Case, tally: Tally) -> None:
    label = case.operation.label
    started = time.perf_counter()
    try:
        response = case.call()
    except Exception as exc:
        if tally.crashed(label, exc, case):
            raise
        return
    tally.sent(
        label, response.status_code, time.perf_counter() - started, str(response.request.url)
    )
    try:
        case.validate_response(response, checks=CHECKS)
    except FailureGroup as group:
        new = [f for f in group.exceptions if tally.failed(label, f, case, response.status_code)]
        if new:
            raise
    except Failure as failure:
        if tally.failed(label, failure, case, response.status_code):
            raise
