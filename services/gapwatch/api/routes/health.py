"""Liveness, readiness and metrics."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from gapwatch.adapters.metrics import CONTENT_TYPE_LATEST, render
from gapwatch.api.deps import ContextDep

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="Liveness: the process is serving")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Readiness: 200 only when Redis and the Kafka broker both answer",
    responses={503: {"description": "a dependency is down"}},
)
async def readyz(ctx: ContextDep) -> JSONResponse:
    redis_ok, broker_ok = await asyncio.gather(
        ctx.store.ping(), asyncio.to_thread(ctx.broker_check)
    )
    body: dict[str, Any] = {"redis": redis_ok, "kafka": broker_ok}
    return JSONResponse(body, status_code=200 if redis_ok and broker_ok else 503)


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(request: Request) -> Response:
    return Response(render(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
