"""Alerts: the current list, and every change as it happens (server-sent events)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated, Literal

from fastapi import APIRouter, Header, HTTPException, Request
from fastapi import Query as QueryParam
from fastapi.responses import StreamingResponse

from gapwatch.adapters.alert_store import AlertStore
from gapwatch.api.alert_schemas import AlertOut
from gapwatch.api.auth import AUTH_RESPONSES, ViewerDep
from gapwatch.api.deps import Context, ContextDep
from gapwatch.api.schemas import ProblemOut
from gapwatch.api.timefmt import iso
from gapwatch.core.access import Principal
from gapwatch.core.alert_events import AlertEvent
from gapwatch.core.refdata import ReferenceData

router = APIRouter(prefix="/v1", tags=["alerts"], responses=AUTH_RESPONSES)

KEEPALIVE_S = 15.0
"""A comment line this often keeps proxies from closing a quiet stream."""
_BLOCK_MS = 1_000


def _store(ctx: Context) -> AlertStore:
    if ctx.alerts is None:
        raise HTTPException(503, "alerts are not available: no alert store configured")
    return ctx.alerts


def alert_out(event: AlertEvent) -> AlertOut:
    labels = event.labels
    kind: Literal["gap", "feed"] = "gap" if labels.get("alertname") == "GapWidening" else "feed"
    return AlertOut(
        id=event.id,
        kind=kind,
        state=event.state,
        change=event.change,
        summary=event.annotations.get("summary", ""),
        rule=event.annotations.get("rule"),
        icb=labels.get("icb"),
        indicator=labels.get("indicator"),
        breakdown=labels.get("breakdown"),
        measure=labels.get("measure"),
        trust=labels.get("trust"),
        starts_at=iso(event.starts_ms),
        ends_at=iso(event.ends_ms) if event.ends_ms is not None else None,
        updated_at=iso(event.at_ms),
        labels=labels,
        annotations=event.annotations,
        detail=event.detail,
    )


def visible(viewer: Principal, event: AlertEvent, ref: ReferenceData) -> bool:
    """Gap alerts by their ICB; stale-feed alerts by their trust (its own trust token, or
    an ICB token of the ICB the trust is in)."""
    trust = event.labels.get("trust")
    if trust is not None:
        home = ref.trusts.get(trust)
        return viewer.may_see_trust(trust, home.home_icb if home else event.labels.get("icb"))
    icb = event.labels.get("icb")
    return icb is not None and viewer.may_see_icb(icb)


def _scope(ctx: Context, viewer: Principal, icb: str | None) -> str | None:
    """The ``icb`` filter checked: known, and inside the token's scope."""
    viewer.require_role("national", "icb", "trust", what="alerts")
    if icb is None:
        return None
    code = icb.upper()
    if code not in ctx.ref.icbs:
        raise HTTPException(422, f"unknown ICB {icb!r}: use an ODS code from /v1/icbs")
    if viewer.role != "trust":
        viewer.require_icb(code)
    return code


def _matches(event: AlertEvent, icb: str | None, kind: str | None) -> bool:
    if icb is not None and event.labels.get("icb") != icb:
        return False
    return kind is None or alert_out(event).kind == kind


@router.get(
    "/alerts",
    summary="Alerts (gap widening, stale feeds): firing first, then recently resolved",
    response_model=list[AlertOut],
    responses={422: {"model": ProblemOut}, 503: {"model": ProblemOut}},
)
async def alerts(
    ctx: ContextDep,
    viewer: ViewerDep,
    icb: Annotated[str | None, QueryParam(description="ICB ODS code, e.g. QOP")] = None,
    state: Annotated[Literal["firing", "resolved"] | None, QueryParam()] = None,
    kind: Annotated[Literal["gap", "feed"] | None, QueryParam()] = None,
    id: Annotated[
        str | None, QueryParam(description="one alert, e.g. gap:QOP:ed_attendance_rate:...")
    ] = None,
) -> list[AlertOut]:
    code = _scope(ctx, viewer, icb)
    store = _store(ctx)
    return [
        alert_out(e)
        for e in await store.current()
        if visible(viewer, e, ctx.ref)
        and _matches(e, code, kind)
        and (state is None or e.state == state)
        and (id is None or e.id == id)
    ]


@router.get(
    "/alerts/stream",
    summary="Server-sent events: one event per alert change (new, updated, resolved)",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}, 503: {"model": ProblemOut}},
)
async def alert_stream(
    ctx: ContextDep,
    viewer: ViewerDep,
    request: Request,
    icb: Annotated[str | None, QueryParam(description="only this ICB's alerts")] = None,
    last_event_id: Annotated[str | None, Header()] = None,
) -> StreamingResponse:
    """Each event's ``event:`` is the change, ``id:`` its stream id (reconnecting
    clients send it back as Last-Event-ID and miss nothing still in the stream) and
    ``data:`` the alert as in GET /v1/alerts."""
    code = _scope(ctx, viewer, icb)
    store = _store(ctx)
    start = last_event_id or await store.last_change_id()

    async def events() -> AsyncIterator[str]:
        last = start
        yield "retry: 2000\n\n"
        quiet = 0.0
        while not await request.is_disconnected():
            changes = await store.changes_after(last, _BLOCK_MS)
            if not changes:
                quiet += _BLOCK_MS / 1000
                if quiet >= KEEPALIVE_S:
                    quiet = 0.0
                    yield ": keepalive\n\n"
                continue
            quiet = 0.0
            for stream_id, event in changes:
                last = stream_id
                if not visible(viewer, event, ctx.ref) or not _matches(event, code, None):
                    continue
                data = json.dumps(alert_out(event).model_dump(), separators=(",", ":"))
                yield f"event: {event.change}\nid: {stream_id}\ndata: {data}\n\n"
            await asyncio.sleep(0)

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
