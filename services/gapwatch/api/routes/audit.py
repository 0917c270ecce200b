"""The audit trail, for national users: who read what, when, with what result."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Request
from fastapi import Query as QueryParam
from pydantic import BaseModel

from gapwatch.adapters.audit_log import AuditLog
from gapwatch.api.auth import AUTH_RESPONSES, ViewerDep
from gapwatch.api.schemas import ProblemOut
from gapwatch.api.timefmt import iso, parse_iso_ms
from gapwatch.core.audit import AuditEntry

router = APIRouter(prefix="/v1", tags=["governance"], responses=AUTH_RESPONSES)


class AuditEntryOut(BaseModel):
    id: str
    """The stream id (pass it as ``before`` to page back)."""
    at: str
    subject: str
    role: str
    scope: str
    method: str
    path: str
    query: str
    status: int
    outcome: str
    client: str
    token_id: str
    reason: str


class AuditPageOut(BaseModel):
    entries: list[AuditEntryOut]
    next_before: str | None
    """Pass as ``before`` for the next (older) page; null at the oldest entry kept."""
    retention_days: int


@router.get(
    "/audit",
    summary="The audit trail of non-public reads, newest first (national tokens only)",
    response_model=AuditPageOut,
    responses={422: {"model": ProblemOut}, 503: {"model": ProblemOut}},
)
async def audit(
    request: Request,
    viewer: ViewerDep,
    limit: Annotated[int, QueryParam(ge=1, le=1000, description="entries per page")] = 100,
    before: Annotated[
        str | None,
        QueryParam(
            pattern=r"^\d{1,15}-\d{1,10}$", description="a stream id from next_before: older only"
        ),
    ] = None,
    since: Annotated[
        str | None, QueryParam(description="ISO-8601: only entries at or after this time")
    ] = None,
    subject: Annotated[
        str | None, QueryParam(max_length=200, description="only this token subject")
    ] = None,
    outcome: Annotated[
        Literal["allowed", "refused", "rate_limited", "bad_request", "error"] | None,
        QueryParam(),
    ] = None,
) -> AuditPageOut:
    viewer.require_role("national", what="the audit trail")
    log: AuditLog | None = request.app.state.audit
    if log is None:
        raise HTTPException(503, "the audit trail is not available: no audit log configured")
    since_ms = None
    if since is not None:
        try:
            since_ms = parse_iso_ms(since)
        except ValueError as exc:
            raise HTTPException(422, f"bad since: {exc}") from exc
    # What is still buffered is part of the trail: a reader sees its own earlier reads.
    await log.flush()
    rows, next_before = await log.read(
        limit=limit, before=before, since_ms=since_ms, subject=subject, outcome=outcome
    )
    return AuditPageOut(
        entries=[_entry_out(entry_id, e) for entry_id, e in rows],
        next_before=next_before,
        retention_days=log.retention_ms // 86_400_000,
    )


def _entry_out(entry_id: str, e: AuditEntry) -> AuditEntryOut:
    return AuditEntryOut(
        id=entry_id,
        at=iso(e.at_ms),
        subject=e.subject,
        role=e.role,
        scope=e.scope,
        method=e.method,
        path=e.path,
        query=e.query,
        status=e.status,
        outcome=e.outcome,
        client=e.client,
        token_id=e.token_id,
        reason=e.reason,
    )
