"""Cached answers served before routing.

A repeated indicator query whose answer is cached and still valid (same ICB write ids,
same elapsed-time step) is answered here without FastAPI's routing, dependency and
parameter handling, which is most of the cost of a cached answer. Anything else,
including the first request for a URL and every request with an error, goes through
the app as usual: this only ever replays an answer the app itself produced for exactly
the same path and query string, and only to a caller the guard (``api.auth``) has
admitted whose token covers the answer's area; anyone else goes through the app, which
refuses them with its message. One exception: if Redis does not answer here, the 503
is sent here too, so a down Redis costs one timeout per request, not two.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from starlette.types import ASGIApp, Receive, Scope, Send

from gapwatch.api.answers import JSON, cache_key
from gapwatch.api.auth import is_protected
from gapwatch.api.deps import Context
from gapwatch.core.access import AccessDenied, Principal
from gapwatch.core.counting import ENGLAND
from gapwatch.core.errors import TransientError

__all__ = ["CachedAnswersFirst", "unavailable_detail"]

_HEADERS = [(b"content-type", JSON.encode())]


def unavailable_detail(exc: TransientError) -> dict[str, str]:
    """The 503 body for a store that does not answer (the app's handler uses it too)."""
    return {"detail": f"temporarily unavailable: {exc}"}


class CachedAnswersFirst:
    def __init__(self, app: ASGIApp, context: Callable[[], Context]) -> None:
        self.app = app
        self.context = context

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            try:
                body = await self._cached(scope)
            except TransientError as exc:
                await _send(send, 503, json.dumps(unavailable_detail(exc)).encode())
                return
            if body is not None:
                await _send(send, 200, body)
                return
        await self.app(scope, receive, send)

    async def _cached(self, scope: Scope) -> bytes | None:
        ctx = self.context()
        request_key = (scope["path"], scope["query_string"])
        area = ctx.responses.area_of(request_key)
        if area is None:
            return None
        if is_protected(scope["path"]):
            principal: Principal | None = scope.get("state", {}).get("principal")
            if principal is None:
                return None
            try:
                kind = "england" if area.icbs == (ENGLAND,) else "icbs"
                principal.require_area(kind, area.icbs)
            except AccessDenied:
                return None
        versions = await ctx.versions.of((*area.icbs, ENGLAND))
        body = ctx.responses.get(cache_key(area.code, request_key, versions), ctx.clock_ms())
        if body is not None:
            scope["route"] = area.route  # request metrics keep the route's label
        return body


async def _send(send: Send, status: int, body: bytes) -> None:
    headers = [*_HEADERS, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
