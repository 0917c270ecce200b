"""The dashboard's page and assets: served, typed, cached, complete and legible."""

from __future__ import annotations

import re
import tomllib
from html.parser import HTMLParser
from pathlib import Path

import pytest

from gapwatch.api.routes.dashboard import STATIC_DIR
from gapwatch.settings import repo_root

CONTRACT_IDS = (
    "icb-select",
    "indicator-select",
    "breakdown-select",
    "window-select",
    "measure-select",
    "groups-chart",
    "groups-table",
    "total-numerator",
    "total-value",
    "england-value",
    "gap-sentence",
    "gap-summary",
    "spc-chart",
    "variation-icon",
    "alerts-list",
    "alerts-status",
    "freshness-table",
    "download-csv",
    "last-updated",
)
SELECTS = ("icb-select", "indicator-select", "breakdown-select", "window-select", "measure-select")


class Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.elements: dict[str, tuple[str, dict[str, str | None]]] = {}
        self.labels: dict[str, str] = {}
        self.urls: list[str] = []
        self._label_for: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if a.get("id"):
            self.elements[str(a["id"])] = (tag, a)
        if tag == "label":
            self._label_for = a.get("for")
            self.labels[str(self._label_for)] = ""
        for key in ("src", "href"):
            if a.get(key):
                self.urls.append(str(a[key]))

    def handle_endtag(self, tag: str) -> None:
        if tag == "label":
            self._label_for = None

    def handle_data(self, data: str) -> None:
        if self._label_for is not None:
            self.labels[self._label_for] += data


def parse(html: str) -> Page:
    page = Page()
    page.feed(html)
    return page


def test_the_page_is_served_at_the_root_as_html_and_revalidated(client):
    response = client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["cache-control"] == "no-cache"
    assert "default-src 'self'" in response.headers["content-security-policy"]
    assert response.headers["x-content-type-options"] == "nosniff"
    again = client.get("/", headers={"If-None-Match": response.headers["etag"]})
    assert again.status_code == 304 and again.content == b""


def test_the_page_survives_redis_being_down_and_cached_json_answers(client, store):
    # The fast path replays cached JSON by URL before routing: "/" must never be one.
    client.get("/v1/icbs/QOP/indicators/ed_attendance_rate?window=24h")
    client.get("/v1/icbs/QOP/indicators/ed_attendance_rate?window=24h")
    assert client.get("/").headers["content-type"].startswith("text/html")
    store.down = True
    assert client.get("/").status_code == 200
    assert client.get("/static/app.js").status_code == 200


@pytest.mark.parametrize(
    ("name", "content_type"),
    [
        ("app.js", "text/javascript; charset=utf-8"),
        ("style.css", "text/css; charset=utf-8"),
        ("favicon.svg", "image/svg+xml"),
    ],
)
def test_assets_are_versioned_by_the_page_and_cached_for_a_year(client, name, content_type):
    page = client.get("/").text
    match = re.search(rf'/static/{re.escape(name)}\?v=([0-9a-f]{{16}})"', page)
    assert match, f"the page does not link {name} with its version"
    versioned = client.get(f"/static/{name}?v={match.group(1)}")
    assert versioned.status_code == 200
    assert versioned.headers["content-type"] == content_type
    assert versioned.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert versioned.content == (STATIC_DIR / name).read_bytes()
    plain = client.get(f"/static/{name}")
    assert plain.headers["cache-control"] == "no-cache"
    stale = client.get(f"/static/{name}?v=0000000000000000")
    assert stale.headers["cache-control"] == "no-cache"
    not_modified = client.get(f"/static/{name}", headers={"If-None-Match": plain.headers["etag"]})
    assert not_modified.status_code == 304


@pytest.mark.parametrize(
    "path",
    [
        "/static/nope.js",
        "/static/index.html",
        "/static/..%2Froutes%2Fdashboard.py",
        "/static/.x.js",
    ],
)
def test_only_the_named_assets_are_served(client, path):
    assert client.get(path).status_code == 404


def test_the_page_has_every_element_the_dashboard_contract_names(client):
    page = parse(client.get("/").text)
    missing = [i for i in CONTRACT_IDS if i not in page.elements]
    assert not missing
    assert page.elements["groups-chart"][0] == "svg"
    assert page.elements["spc-chart"][0] == "svg"
    download = page.elements["download-csv"]
    assert download[0] == "a" and "download" in download[1]
    assert page.elements["alerts-list"][1].get("aria-live") == "polite"
    assert page.elements["announcer"][1].get("aria-live") == "polite"


def test_every_control_is_a_labelled_select(client):
    page = parse(client.get("/").text)
    for sid in SELECTS:
        assert page.elements[sid][0] == "select", sid
        assert page.labels.get(sid, "").strip(), f"#{sid} has no <label for>"
    windows = re.findall(r'<option value="(\w+)"', client.get("/").text)
    assert {"1h", "24h", "7d", "28d"} <= set(windows)


def test_nothing_is_loaded_from_elsewhere(client):
    page = parse(client.get("/").text)
    assert page.urls and all(u.startswith(("/", "#")) for u in page.urls), page.urls
    script = (STATIC_DIR / "app.js").read_text()
    assert not re.search(r"https?://(?!www\.w3\.org/2000/svg)", script)
    # The alert stream is read with fetch() (EventSource cannot send a token), and the
    # token goes in a header, never the URL.
    assert "new EventSource(" not in script and "/v1/alerts/stream" in script
    assert '"text/event-stream"' in script and "Authorization" in script
    assert "access_token=" not in script and "?token=" not in script


def test_the_static_files_are_package_data():
    config = tomllib.loads((repo_root() / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["gapwatch"]
    package = STATIC_DIR.parent.parent
    for path in STATIC_DIR.iterdir():
        relative = path.relative_to(package)
        assert any(relative.match(p) for p in patterns), f"{relative} is not package data"


# -- contrast ---------------------------------------------------------------------------


def _palette() -> dict[str, str]:
    css = (STATIC_DIR / "style.css").read_text()
    root = re.search(r":root\s*\{(.*?)\}", css, re.S)
    assert root
    return dict(re.findall(r"--([\w-]+):\s*(#[0-9a-fA-F]{6})\s*;", root.group(1)))


def _luminance(hex_colour: str) -> float:
    channels = [int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(a: str, b: str) -> float:
    high, low = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


TEXT = 4.5  # WCAG 2.2 AA 1.4.3, normal-size text
GRAPHICS = 3.0  # 1.4.11, chart marks, borders and focus indicators

PAIRS = [
    ("text", "surface", TEXT),
    ("text", "bg", TEXT),
    ("muted", "surface", TEXT),
    ("muted", "bg", TEXT),
    ("accent", "surface", TEXT),
    ("surface", "accent", TEXT),
    ("concern", "surface", TEXT),
    ("concern", "firing-bg", TEXT),
    ("text", "firing-bg", TEXT),
    ("stale-text", "stale-bg", TEXT),
    ("stale-text", "surface", TEXT),
    ("text", "stale-bg", TEXT),
    ("england", "surface", TEXT),
    ("text", "focus", TEXT),
    ("improve", "surface", GRAPHICS),
    ("neutral", "surface", GRAPHICS),
    ("common", "surface", GRAPHICS),
    ("border", "surface", GRAPHICS),
    ("total", "surface", GRAPHICS),
]


@pytest.mark.parametrize(("fg", "bg", "minimum"), PAIRS)
def test_the_palette_meets_wcag_aa_contrast(fg, bg, minimum):
    palette = _palette()
    assert contrast(palette[fg], palette[bg]) >= minimum


def test_the_contrast_ratios_stated_in_the_stylesheet_are_true():
    css = (STATIC_DIR / "style.css").read_text()
    palette = _palette()
    stated = re.findall(
        r"--([\w-]+)\s+#[0-9a-f]{6} on --([\w-]+)(?: #[0-9a-f]{6})? ([\d.]+):1", css
    )
    assert len(stated) >= 10
    for fg, bg, ratio in stated:
        assert contrast(palette[fg], palette[bg]) == pytest.approx(float(ratio), abs=0.01), fg


def test_the_static_dir_is_inside_the_package():
    assert Path(STATIC_DIR, "index.html").is_file()
