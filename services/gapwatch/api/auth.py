"""The API's guard: size limits, bearer-token authentication, per-token rate limits,
security headers and the audit trail, as one plain ASGI middleware in front of
everything (the cached-answer fast path included).

Who may see what is ``core.access``; routes ask for the caller with ``ViewerDep`` and
call ``require_*`` on it, and ``AccessDenied`` becomes a 403 here. Public paths
(``/v1/public/...``), the dashboard's files and the operational endpoints (``/healthz``,
``/readyz``, ``/metrics``) need no token; every other ``/v1`` request does.
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Annotated, Any, Final

from fastapi import Depends, HTTPException, Request
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gapwatch.adapters.audit_log import AuditLog
from gapwatch.adapters.tokens import verify_token
from gapwatch.api.schemas import ProblemOut
from gapwatch.core.access import AccessDenied, InvalidToken, Principal
from gapwatch.core.audit import ANONYMOUS, AuditEntry
from gapwatch.core.rate_limit import RateLimiter
from gapwatch.settings import AuthSettings

__all__ = [
    "AUTH_RESPONSES",
    "GUARD_RESPONSES",
    "Guard",
    "ViewerDep",
    "access_denied",
    "is_protected",
]

PUBLIC_PREFIX: Final = "/v1/public"
_VERIFIED_KEPT: Final = 10_000
REALM: Final = 'Bearer realm="gapwatch"'
SECURITY_HEADERS: Final = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=(), payment=()"),
    (b"strict-transport-security", b"max-age=31536000; includeSubDomains"),
)
API_CSP: Final = b"default-src 'none'; frame-ancestors 'none'"
"""For everything but the dashboard page (which sends its own): data is never a page."""
AUTH_RESPONSES: Final[dict[int | str, dict[str, Any]]] = {
    401: {"model": ProblemOut, "description": "no token, or a forged, malformed or expired one"},
    403: {"model": ProblemOut, "description": "the token's role or scope does not cover this"},
    422: {"model": ProblemOut, "description": "a parameter is invalid; detail says which"},
    429: {"model": ProblemOut, "description": "this token's rate limit; see Retry-After"},
}


GUARD_RESPONSES: Final[dict[int | str, dict[str, Any]]] = {
    413: {"model": ProblemOut, "description": "a request body (no endpoint takes one)"},
    414: {"model": ProblemOut, "description": "a URL over auth.max_url_bytes"},
    429: AUTH_RESPONSES[429],
}


def is_protected(path: str) -> bool:
    return path.startswith("/v1/") and not (
        path == PUBLIC_PREFIX or path.startswith(PUBLIC_PREFIX + "/")
    )


_bearer = HTTPBearer(auto_error=False, description="a gapwatch token (`gapwatch token`)")


async def _viewer(
    request: Request,
    _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The verified caller (the guard has already refused requests without one)."""
    principal: Principal | None = request.scope.get("state", {}).get("principal")
    if principal is None:
        raise HTTPException(401, "this endpoint needs a bearer token", {"WWW-Authenticate": REALM})
    return principal


ViewerDep = Annotated[Principal, Depends(_viewer)]


def access_denied(request: Request, exc: AccessDenied) -> JSONResponse:
    """The 403 for a valid token asking outside its scope (the reason goes to the audit)."""
    request.scope.setdefault("state", {})["refusal"] = str(exc)
    return JSONResponse({"detail": str(exc)}, status_code=403)


class Guard:
    def __init__(
        self,
        app: ASGIApp,
        auth: AuthSettings,
        audit: AuditLog | None,
        clock_ms: Callable[[], int],
    ) -> None:
        self.app = app
        self.auth = auth
        self.audit = audit
        self.clock_ms = clock_ms
        self.limiter = RateLimiter(auth.rate_per_s, auth.rate_burst)
        self._verified: OrderedDict[str, Principal] = OrderedDict()
        """Tokens whose signature and claims have been checked, by their exact text:
        checking an HMAC signature costs ~80 us, most of a cached answer. Only expiry
        changes with time, and it is checked on every request."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        protected = is_protected(path)
        headers = Headers(scope=scope)
        status = 500
        principal: Principal | None = None
        refusal = ""
        state: dict[str, Any] = scope.setdefault("state", {})

        async def guarded_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                _add_security_headers(message, protected)
            await send(message)

        try:
            problem = self._too_large(scope, headers)
            if problem is not None:
                refusal = problem[1]
                await _problem(guarded_send, *problem)
                return
            if protected:
                try:
                    principal = self._authenticate(headers)
                except InvalidToken as exc:
                    refusal = str(exc)
                    await _problem(guarded_send, 401, refusal, _challenge(headers, refusal))
                    return
            state["principal"] = principal
            key = _limit_key(scope, principal)
            decision = self.limiter.take(key, time.monotonic())
            if not decision.allowed:
                wait = max(1, int(decision.retry_after_s + 0.999))
                refusal = f"rate limit: at most {self.auth.rate_per_s:g} requests per second"
                await _problem(
                    guarded_send, 429, f"{refusal}; retry after {wait} s", [("retry-after", wait)]
                )
                return
            await self.app(scope, receive, guarded_send)
        finally:
            if protected and self.audit is not None:
                self.audit.record(
                    _entry(
                        scope,
                        principal,
                        status,
                        self.clock_ms(),
                        refusal or state.get("refusal", ""),
                    )
                )

    def _authenticate(self, headers: Headers) -> Principal:
        raw = headers.get("authorization")
        if raw is None:
            raise InvalidToken(
                "this endpoint needs a bearer token: send 'Authorization: Bearer <token>' "
                "(issue one with `gapwatch token`)"
            )
        scheme, _, token = raw.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise InvalidToken("the Authorization header must be 'Bearer <token>'")
        token = token.strip()
        now_s = self.clock_ms() // 1000
        known = self._verified.get(token)
        if known is not None:
            if now_s > known.expires_at_s + self.auth.leeway_s:
                del self._verified[token]
                raise InvalidToken("token has expired")
            self._verified.move_to_end(token)
            return known
        principal = verify_token(self.auth, token, now_s)
        self._verified[token] = principal
        if len(self._verified) > _VERIFIED_KEPT:
            self._verified.popitem(last=False)
        return principal

    def _too_large(self, scope: Scope, headers: Headers) -> tuple[int, str] | None:
        url_bytes = len(scope.get("raw_path") or scope["path"].encode()) + len(
            scope["query_string"]
        )
        if url_bytes > self.auth.max_url_bytes:
            return 414, f"the URL is longer than {self.auth.max_url_bytes} bytes"
        length = headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > self.auth.max_body_bytes):
            return 413, f"request bodies over {self.auth.max_body_bytes} bytes are not accepted"
        if "chunked" in headers.get("transfer-encoding", "").lower():
            return 413, "chunked request bodies are not accepted"
        return None


def _limit_key(scope: Scope, principal: Principal | None) -> str:
    if principal is not None:
        return "token:" + (principal.token_id or principal.subject)
    client = scope.get("client")
    return "addr:" + (client[0] if client else "unknown")


def _challenge(headers: Headers, reason: str) -> list[tuple[str, str | int]]:
    if headers.get("authorization") is None:
        return [("www-authenticate", REALM)]
    safe = reason.replace('"', "'")
    return [("www-authenticate", f'{REALM}, error="invalid_token", error_description="{safe}"')]


_DEFAULT_HEADERS: Final = (*SECURITY_HEADERS, (b"content-security-policy", API_CSP))
_PRIVATE: Final = ((b"cache-control", b"private, no-store"), (b"vary", b"Authorization"))


def _add_security_headers(message: Message, protected: bool) -> None:
    """Raw byte pairs, not ``MutableHeaders``: this runs on every response, and the
    cached-answer path is ~30 us in all."""
    raw: list[tuple[bytes, bytes]] = list(message.get("headers", ()))
    present = {name.lower() for name, _ in raw}
    # A route's own choice (the dashboard's CSP and nosniff) stays.
    raw.extend(pair for pair in _DEFAULT_HEADERS if pair[0] not in present)
    if protected:
        # Answers depend on who asks: never stored by a shared cache or the browser.
        raw = [pair for pair in raw if pair[0].lower() != b"cache-control"]
        raw.extend(_PRIVATE)
    message["headers"] = raw


async def _problem(
    send: Send, status: int, detail: str, extra: list[tuple[str, str | int]] | None = None
) -> None:
    body = json.dumps({"detail": detail}).encode()
    raw = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *((k.encode(), str(v).encode()) for k, v in extra or ()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


def _entry(
    scope: Scope, principal: Principal | None, status: int, now_ms: int, reason: str
) -> AuditEntry:
    client = scope.get("client")
    return AuditEntry(
        at_ms=now_ms,
        subject=principal.subject if principal else ANONYMOUS,
        role=principal.role if principal else "none",
        scope=principal.scope_text() if principal else "",
        method=scope["method"],
        path=scope["path"],
        query=scope["query_string"].decode("latin-1"),
        status=status,
        client=client[0] if client else "",
        token_id=principal.token_id if principal else "",
        reason=reason,
    )
