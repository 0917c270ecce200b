"""``create_app``: the FastAPI application, wired from explicit dependencies."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gapwatch import __version__
from gapwatch.adapters.alert_store import AlertStore
from gapwatch.adapters.audit_log import AuditLog
from gapwatch.adapters.dead_letter_reader import DeadLetterSource
from gapwatch.adapters.metrics import ApiMetrics
from gapwatch.adapters.tokens import signing_key
from gapwatch.alerting.gap_book import GapBook
from gapwatch.alerting.service import spc_options
from gapwatch.api.auth import GUARD_RESPONSES, Guard, access_denied
from gapwatch.api.count_cache import ResponseCache, Versions, WindowSums
from gapwatch.api.deps import Context
from gapwatch.api.fast_path import CachedAnswersFirst, unavailable_detail
from gapwatch.api.routes import alerts as alert_routes
from gapwatch.api.routes import audit as audit_routes
from gapwatch.api.routes import (
    catalogue,
    dashboard,
    export,
    freshness,
    health,
    indicators,
    public,
    series,
)
from gapwatch.api.routes import dead_letters as dead_letter_routes
from gapwatch.api.routes import lsoas as lsoa_routes
from gapwatch.core.access import AccessDenied
from gapwatch.core.errors import TransientError
from gapwatch.core.ports import CountReader, DayReader
from gapwatch.core.refdata import ReferenceData
from gapwatch.settings import Settings

__all__ = ["create_app"]


class _Observe:
    """Request latency and counts per route template, as plain ASGI middleware: Starlette's
    ``BaseHTTPMiddleware`` costs a task and stream per request, a large share of a cached
    answer's time."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def observed_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, observed_send)
        finally:
            # The router records the matched route in the (shared) scope.
            path = getattr(scope.get("route"), "path", "unmatched")
            method = scope["method"]
            self.metrics.latency.labels(method, path).observe(time.perf_counter() - started)
            self.metrics.requests.labels(method, path, str(status)).inc()


def invalid_request_detail(exc: RequestValidationError) -> str:
    """One sentence naming each bad parameter, in the same ``{"detail": str}`` shape as
    every other error (FastAPI's default is a list, and quotes the input back)."""
    problems = []
    for error in exc.errors():
        where = [str(p) for p in error.get("loc", ()) if p not in ("query", "path", "header")]
        problems.append(f"{'.'.join(where) or 'request'}: {error.get('msg', 'invalid')}")
    return "invalid request: " + "; ".join(problems)


def create_app(
    settings: Settings,
    store: CountReader,
    ref: ReferenceData,
    *,
    clock_ms: Callable[[], int] | None = None,
    broker_check: Callable[[], bool] | None = None,
    on_shutdown: Callable[[], Awaitable[None]] | None = None,
    days: DayReader | None = None,
    alerts: AlertStore | None = None,
    audit: AuditLog | None = None,
    dead_letters: DeadLetterSource | None = None,
) -> FastAPI:
    """``audit`` None records nothing (tests of other concerns); ``gapwatch api`` always
    passes one. Raises ``ConfigError`` without a token signing key: the API never
    serves unauthenticated."""
    signing_key(settings.auth)
    clock = clock_ms or (lambda: time.time_ns() // 1_000_000)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        stop = asyncio.Event()
        flusher = (
            asyncio.create_task(audit.run(settings.audit.flush_interval_s, stop))
            if audit is not None
            else None
        )
        yield
        stop.set()
        if flusher is not None:
            await flusher
        if on_shutdown is not None:
            await on_shutdown()

    app = FastAPI(
        title="gapwatch",
        version=__version__,
        description="Live health-inequality indicators for NHS integrated care systems: "
        "counts by IMD quintile, ethnic group, age band and sex from streamed encounters.",
        lifespan=lifespan,
        # What the guard (api/auth.py) may answer on any route, before routing.
        responses=GUARD_RESPONSES,
    )
    app.state.ctx = Context(
        settings=settings,
        store=store,
        ref=ref,
        clock_ms=clock,
        broker_check=broker_check or (lambda: True),
        versions=Versions(store.versions, settings.api.versions_max_age_ms),
        sums=WindowSums(store, settings.api.cache_windows),
        responses=ResponseCache(),
        gap_book=GapBook(ref, settings.api.reference_ethnic_group, settings.alerts.min_events),
        spc_options=spc_options(settings.alerts),
        days=days,
        alerts=alerts,
        dead_letters=dead_letters,
    )
    metrics = ApiMetrics.create()
    app.state.metrics = metrics

    app.state.audit = audit

    # Starlette wraps in reverse order: metrics outermost, then CORS (only when origins
    # are configured: it must answer pre-flight requests, which carry no token), then
    # the guard (limits, tokens, rate, headers, audit), then cached answers.
    app.add_middleware(CachedAnswersFirst, context=lambda: app.state.ctx)
    app.add_middleware(Guard, auth=settings.auth, audit=audit, clock_ms=clock)
    if settings.auth.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.auth.cors_origins),
            allow_methods=["GET"],
            allow_headers=["Authorization"],
        )
    app.add_middleware(_Observe, metrics=metrics)
    app.add_exception_handler(AccessDenied, access_denied)  # type: ignore[arg-type]

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": invalid_request_detail(exc)}, status_code=422)

    @app.exception_handler(TransientError)
    async def unavailable(_: Request, exc: TransientError) -> JSONResponse:
        return JSONResponse(unavailable_detail(exc), status_code=503)

    for module in (
        health,
        catalogue,
        indicators,
        series,
        freshness,
        dead_letter_routes,
        alert_routes,
        audit_routes,
        lsoa_routes,
        export,
        public,
        dashboard,
    ):
        app.include_router(module.router)
    return app
