"""Browser tests of the live dashboard: Playwright for Python driving Debian's chromium
(``.ci/run`` installs the ``chromium`` package; ``playwright install`` is never run, so no
browser is downloaded), against one live stack per module (``scripts/stack up``: worker,
API, alerter) on the session's broker and Redis.

The alerter is configured as in ``tests/e2e/test_widening_alert.py`` (one indicator, one
breakdown, no lateness, a 1 s loop) so the widening scenario raises its alert within the
module's time budget. Screenshots go to ``artifacts/screenshots/<test>.png`` and timing
numbers to ``artifacts/browser-timings.json``.

The page is opened as ``scripts/stack up`` prints it: with the stack's national token in
the URL fragment (``/#token=...``); the page keeps it in sessionStorage, so later loads in
the same tab go without it. The tests' own API calls use tokens of their own (each token
has its own rate limit, and the page's polling is not the tests' to spend).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from gapwatch.settings import repo_root
from tests.conftest import clear_namespace, need
from tests.e2e.conftest import stack_logs
from tests.stackenv import fast_alerter_env, stack_env, stack_token
from tests.tokens import national_headers

ROOT = repo_root()
CHROMIUM = Path(os.environ.get("GAPWATCH_CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = ROOT / "artifacts"
SCREENSHOTS = ARTIFACTS / "screenshots"
DOWNLOADS = ARTIFACTS / "downloads"
TIMINGS = ARTIFACTS / "browser-timings.json"

ALERT_INDICATOR = "emergency_admission_rate"
OTHER_ICBS = ("QYG", "QHL")
"""ICBs besides QOP that get the small backfill: Cheshire and Merseyside, Birmingham."""

ALERTER_ENV = fast_alerter_env(ALERT_INDICATOR)

WIDENING_ARGS = (
    "--scenario", "widening_gap", "--icb", "QOP",
    "--backfill-days", "61", "--widen-from=-7d",
    "--count", "250000", "--mix", "admission=1", "--seed", "5",
)  # fmt: skip
"""As tests/e2e/test_widening_alert.py: QOP's emergency admissions widen for 7 days."""

OBSERVER_JS = """
(() => {
  // When the page marks itself ready, and every change of the numbers, timed in the page:
  // `ready` in performance.now() ms (0 = navigation start), the others in epoch ms;
  // `alerts` maps each alert id to when its list item first appeared.
  const marks = {
    ready: null, updates: [], totals: [], alerts: {}, lastUpdated: null, lastTotal: null,
  };
  window.__gw = marks;
  const look = () => {
    const body = document.body;
    if (!body) return;
    if (marks.ready === null && body.dataset.ready === "true") marks.ready = performance.now();
    const updated = body.dataset.updatedAt;
    if (updated && updated !== marks.lastUpdated) {
      marks.lastUpdated = updated;
      marks.updates.push({ at: Date.now(), value: updated });
    }
    for (const li of document.querySelectorAll("#alerts-list li[data-alert-id]")) {
      const id = li.dataset.alertId;
      if (!(id in marks.alerts)) marks.alerts[id] = Date.now();
    }
    const total = document.getElementById("total-numerator");
    const text = total ? total.textContent.trim() : null;
    if (text && text !== marks.lastTotal) {
      marks.lastTotal = text;
      marks.totals.push({ at: Date.now(), text });
    }
  };
  new MutationObserver(look).observe(document, {
    subtree: true, childList: true, attributes: true, characterData: true,
  });
})();
"""


def number(text: str | None) -> float | None:
    """A number as the page shows it ("18,649.7", "1 170", "12.3"), None when it shows none."""
    if text is None:
        return None
    match = re.search(r"-?[\d,\s]*\d(?:\.\d+)?", text.replace("\u2212", "-"))
    if match is None:
        return None
    return float(re.sub(r"[,\s]", "", match.group(0)))


def decimals(text: str) -> int:
    match = re.search(r"\.(\d+)", text)
    return len(match.group(1)) if match else 0


# -- timings --------------------------------------------------------------------------


class Timings:
    """Numbers the tests measure, printed and written to artifacts/browser-timings.json
    as each arrives (so a failing run still leaves the ones it got)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.data: dict[str, Any] = {}

    def record(self, test: str, **values: Any) -> None:
        self.data.setdefault(test, {}).update(values)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(self.data, indent=2, sort_keys=True) + "\n")
        print(f"\n[timings] {test}: {json.dumps(values, sort_keys=True)} -> {self.path}")


@pytest.fixture(scope="session")
def timings() -> Timings:
    return Timings(TIMINGS)


# -- the browser ----------------------------------------------------------------------


@pytest.fixture(scope="session")
def chromium() -> Path:
    need(
        CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK),
        f"no chromium at {CHROMIUM} (apt install chromium, as .ci/run does, "
        "or set GAPWATCH_CHROMIUM)",
    )
    try:
        import playwright  # noqa: F401
    except ImportError:
        need(False, "playwright is not installed (pip install -e '.[dev]')")
    return CHROMIUM


@pytest.fixture(scope="module")
def browser(chromium: Path, timings: Timings) -> Iterator[Any]:
    # Module scope, not session: while Playwright's sync API is open it keeps an event
    # loop running in the main thread, and every later test's asyncio.run() would fail.
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(chromium), headless=True)
        timings.record("browser", chromium=str(chromium), version=launched.version)
        yield launched
        launched.close()


@dataclass
class PageLog:
    """What the page did besides rendering: requests (epoch s, method, URL), console
    errors and uncaught exceptions, and main-frame navigations."""

    requests: list[tuple[float, str, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    navigations: list[str] = field(default_factory=list)

    def paths_since(self, since: float, until: float, prefix: str) -> dict[str, int]:
        from urllib.parse import urlparse

        counts: dict[str, int] = {}
        for at, _, url in self.requests:
            path = urlparse(url).path
            if since <= at < until and path.startswith(prefix):
                counts[path] = counts.get(path, 0) + 1
        return counts


@pytest.fixture()
def page_log() -> PageLog:
    return PageLog()


@pytest.fixture()
def page(browser: Any, page_log: PageLog, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh context and page; a full-page screenshot of whatever it shows at the end
    (pass or fail) goes to artifacts/screenshots/<test>.png."""
    # bypass_csp: Playwright's wait_for_function evaluates strings in the page, which the
    # dashboard's Content-Security-Policy (rightly) forbids.
    context = browser.new_context(
        viewport={"width": 1280, "height": 900}, accept_downloads=True, bypass_csp=True
    )
    context.set_default_timeout(15_000)
    context.add_init_script(OBSERVER_JS)
    page = context.new_page()
    log = page_log
    page.on("request", lambda r: log.requests.append((time.time(), r.method, r.url)))
    page.on("pageerror", lambda exc: log.errors.append(f"pageerror: {exc}"))
    page.on(
        "response",
        lambda r: (
            log.errors.append(f"HTTP {r.status}: {r.request.method} {r.url}")
            if r.status >= 400
            else None
        ),
    )
    page.on(
        "console",
        lambda msg: (
            log.errors.append(f"console.{msg.type}: {msg.text}") if msg.type == "error" else None
        ),
    )
    page.on(
        "framenavigated",
        lambda frame: log.navigations.append(frame.url) if frame == page.main_frame else None,
    )
    try:
        yield page
    finally:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shot = SCREENSHOTS / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', request.node.name)}.png"
        try:
            page.screenshot(path=str(shot), full_page=True)
            print(f"\n[screenshot] {shot}")
        except Exception as exc:  # the page may have crashed: keep the test's own error
            print(f"\n[screenshot] failed for {shot}: {exc}")
        if log.errors:
            print("[page errors]\n  " + "\n  ".join(log.errors[:20]))
        context.close()


# -- the live stack -------------------------------------------------------------------


@dataclass
class LiveStack:
    env: dict[str, str]
    run_dir: Path
    delivered: int = 0
    """Events delivered to the topic so far; the worker has caught up when it has
    accounted for as many (counted, duplicate or dead-lettered)."""
    widened: bool = False
    headers: dict[str, str] = field(default_factory=lambda: national_headers(ttl_s=4 * 3600))
    """The tests' own national token (signed with the test run's key, as the stack is)."""

    @property
    def token(self) -> str:
        """The national development token ``scripts/stack up`` printed: the page's."""
        return stack_token(self.env)

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.env['GAPWATCH_API_PORT']}"

    def url(self, path: str = "/", **query: str) -> str:
        from urllib.parse import urlencode

        return f"{self.api}{path}" + (f"?{urlencode(query)}" if query else "")

    def get_json(self, path: str, **query: str) -> Any:
        response = httpx.get(self.url(path, **query), headers=self.headers, timeout=10)
        response.raise_for_status()
        return response.json()

    def indicator(self, icb: str, indicator: str, by: str, window: str) -> dict[str, Any]:
        path = f"/v1/icbs/{icb}/indicators/{indicator}"
        answer: dict[str, Any] = self.get_json(path, by=by, window=window)
        return answer

    def logs(self) -> str:
        return stack_logs(self.run_dir)

    def publish(self, *args: str, timeout: float = 300) -> dict[str, Any]:
        """``gapwatch publish ARGS`` against this stack; its JSON summary."""
        done = subprocess.run(
            [sys.executable, "-m", "gapwatch", "publish", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        assert done.returncode == 0, f"publish {args} failed:\n{done.stdout}\n{done.stderr}"
        summary: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
        self.delivered += int(summary["delivered"])
        return summary

    def accounted(self) -> int:
        """Events the ingest worker has counted, skipped as duplicates or dead-lettered."""
        url = f"http://127.0.0.1:{self.env['GAPWATCH_INGEST_WEB_PORT']}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310  # local URL
            text = response.read().decode()
        total = 0.0
        for line in text.splitlines():
            name = line.split("{", 1)[0].split(" ", 1)[0]
            if name in (
                "gapwatch_events_counted_total",
                "gapwatch_duplicates_total",
                "gapwatch_dead_letters_total",
            ):
                total += float(line.rsplit(" ", 1)[1])
        return int(total)

    def wait_ingested(self, timeout_s: float = 120) -> None:
        deadline = time.monotonic() + timeout_s
        seen = -1
        while time.monotonic() < deadline:
            try:
                seen = self.accounted()
            except OSError:
                seen = -1
            if seen >= self.delivered:
                return
            time.sleep(0.25)
        pytest.fail(
            f"the worker accounted for {seen} of {self.delivered} events in {timeout_s} s\n"
            + self.logs()
        )

    def publish_widening(self) -> None:
        """The widening scenario for QOP's emergency admissions, once per module."""
        if not self.widened:
            self.publish(*WIDENING_ARGS)
            self.widened = True
        self.wait_ingested()


@pytest.fixture(scope="module")
def module_namespace(redis_url: str) -> Iterator[str]:
    ns = f"test-{uuid.uuid4().hex[:10]}"
    yield ns
    clear_namespace(redis_url, ns)


@pytest.fixture(scope="module")
def stack(
    chromium: Path,
    broker: str,
    redis_url: str,
    module_namespace: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[LiveStack]:
    """The stack with the alerter knobs, and two days of history for QOP and two other
    ICBs (all event types), counted before the first test starts."""
    run_dir = tmp_path_factory.mktemp("browser-stack")
    env = stack_env(broker, redis_url, module_namespace, run_dir)
    env.update(ALERTER_ENV)
    command = [str(ROOT / "scripts" / "stack")]
    up = subprocess.run([*command, "up"], env=env, capture_output=True, text=True, timeout=180)
    live = LiveStack(env, run_dir)
    try:
        assert up.returncode == 0, f"stack up failed:\n{up.stdout}\n{up.stderr}\n{live.logs()}"
        icbs = [arg for icb in ("QOP", *OTHER_ICBS) for arg in ("--icb", icb)]
        live.publish("--backfill-days", "2", "--count", "40000", "--seed", "1", *icbs)
        live.wait_ingested()
        yield live
    finally:
        subprocess.run([*command, "down"], env=env, timeout=60, capture_output=True)


# -- the page -------------------------------------------------------------------------

READY_TIMEOUT_MS = 20_000


def open_dashboard(
    page: Any, log: PageLog, stack: LiveStack, *, token: str | None = None, **query: str
) -> None:
    """Go to the dashboard with this view and wait for its first full render. A page that
    has not been on the dashboard yet (or is given ``token``) gets the token in the URL
    fragment, as ``stack up`` prints it; later loads use the one the tab kept."""
    url = stack.url("/", **query)
    on_dashboard = page.url.startswith(stack.api + "/")
    if token is not None or not on_dashboard:
        if on_dashboard:
            # Only the fragment would differ: a same-document navigation, not a load.
            page.goto("about:blank")
        url += f"#token={token or stack.token}"
    page.goto(url, wait_until="commit")
    wait_ready(page, log)


def wait_ready(page: Any, log: PageLog) -> None:
    try:
        page.wait_for_selector(
            "body[data-ready='true']", state="attached", timeout=READY_TIMEOUT_MS
        )
    except Exception as exc:
        raise AssertionError(
            f"body[data-ready='true'] not set within {READY_TIMEOUT_MS} ms at {page.url}; "
            f"page errors: {log.errors[:10]}"
        ) from exc


def wait_until(
    what: str, check: Callable[[], Any], timeout_s: float, interval_s: float = 0.1
) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(interval_s)
