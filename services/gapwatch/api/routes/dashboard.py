"""The live dashboard: ``/`` is its page, ``/static/<name>`` its script, styles and icon.

Plain files from ``api/static`` (no build step). They are read once and kept in memory
with a content hash: the page names its assets as ``/static/app.js?v=<hash>``, so a
browser may keep an asset for a year (``immutable``) and a new release is fetched at once
because its URL changes. The page itself is revalidated on every load (``no-cache`` with
an ETag, answered 304 when unchanged). Only files in the directory are served, by exact
name: no paths, no directory listing.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from fastapi import APIRouter, HTTPException, Request, Response

router = APIRouter(tags=["dashboard"], include_in_schema=False)

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
PAGE = "index.html"
YEAR_S = 365 * 24 * 3600
# Same-origin only: the page runs no inline script or style, evaluates no strings and
# loads nothing from elsewhere, so an injected tag could neither run nor phone home.
# (The browser tests open their context with bypass_csp for Playwright's own scripts.)
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


@dataclass(frozen=True, slots=True)
class Asset:
    body: bytes
    content_type: str
    version: str
    """A short hash of the body: the ``?v=`` the page asks for, and the ETag."""


def _read(name: str) -> Asset:
    path = STATIC_DIR / name
    body = path.read_bytes()
    return Asset(body, CONTENT_TYPES[path.suffix], hashlib.sha256(body).hexdigest()[:16])


@cache
def asset(name: str) -> Asset | None:
    """A servable file by name (None for anything else), with the page's asset URLs
    versioned: ``{{v:app.js}}`` in index.html becomes app.js's hash."""
    if name == PAGE or "/" in name or name.startswith("."):
        return None
    if Path(name).suffix not in CONTENT_TYPES or not (STATIC_DIR / name).is_file():
        return None
    return _read(name)


@cache
def page() -> Asset:
    raw = (STATIC_DIR / PAGE).read_text(encoding="utf-8")
    for path in sorted(STATIC_DIR.iterdir()):
        found = asset(path.name)
        if found is not None:
            raw = raw.replace("{{v:" + path.name + "}}", found.version)
    body = raw.encode()
    return Asset(body, CONTENT_TYPES[".html"], hashlib.sha256(body).hexdigest()[:16])


def _respond(request: Request, item: Asset, cache_control: str, csp: bool = False) -> Response:
    etag = f'"{item.version}"'
    headers = {
        "Cache-Control": cache_control,
        "ETag": etag,
        "X-Content-Type-Options": "nosniff",
    }
    if csp:
        headers["Content-Security-Policy"] = CSP
        headers["Referrer-Policy"] = "same-origin"
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    return Response(item.body, media_type=item.content_type, headers=headers)


@router.get("/")
async def dashboard(request: Request) -> Response:
    return _respond(request, page(), "no-cache", csp=True)


@router.get("/static/{name}")
async def static(request: Request, name: str, v: str | None = None) -> Response:
    item = asset(name)
    if item is None:
        raise HTTPException(404, f"no static file {name!r}")
    if v == item.version:
        return _respond(request, item, f"public, max-age={YEAR_S}, immutable")
    return _respond(request, item, "no-cache")
