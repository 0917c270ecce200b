"""Dead letters of the feeds the token may see: why messages were rejected, never what
they held.

A letter belongs to the trust its key names (the source message's key, which the
trust's producer sets to its ODS code; the ingest worker keeps it). Visibility is the
feed rule of ``freshness``: national all, an ICB token its ICBs' trusts, a trust token
its own; a letter without a known trust only national.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query

from gapwatch.adapters.dead_letter_reader import DeadLetterSource
from gapwatch.api.auth import AUTH_RESPONSES, ViewerDep
from gapwatch.api.deps import Context, ContextDep
from gapwatch.api.routes.freshness import FEED_ROLES, TrustParam, checked_trust, sees_feed
from gapwatch.api.schemas import DeadLetterOut, DeadLettersOut, ProblemOut
from gapwatch.api.timefmt import iso
from gapwatch.ingest.dead_letters import DeadLetterRecord, count_by_reason

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["feeds"], responses=AUTH_RESPONSES)


def _reader(ctx: Context) -> DeadLetterSource:
    if ctx.dead_letters is None:
        raise HTTPException(503, "dead letters are not available: no dead-letter reader configured")
    return ctx.dead_letters


def _newest_first(record: DeadLetterRecord) -> tuple[int, int, int]:
    failed = -1 if record.failed_at_ms is None else record.failed_at_ms
    return (failed, record.offset, record.partition)


def letter_out(record: DeadLetterRecord) -> DeadLetterOut:
    """A letter as the API shows it: headers and position, no payload."""
    return DeadLetterOut(
        partition=record.partition,
        offset=record.offset,
        trust=record.trust,
        reason=record.reason,
        detail=record.detail,
        failed_at=None if record.failed_at_ms is None else iso(record.failed_at_ms),
        source_topic=record.source_topic,
        source_partition=record.source_partition,
        source_offset=record.source_offset,
        batch_index=record.batch_index,
    )


@router.get(
    "/dead-letters",
    summary="The newest dead letters of the trusts this token may see, with counts by reason",
    responses={
        404: {"model": ProblemOut, "description": "no such trust"},
        503: {"model": ProblemOut, "description": "the broker does not answer, or no reader"},
    },
)
async def dead_letters(
    ctx: ContextDep,
    viewer: ViewerDep,
    trust: TrustParam = None,
    reason: Annotated[
        str | None, Query(description="only this reason, e.g. too_late", max_length=64)
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500, description="at most this many letters")] = 50,
) -> DeadLettersOut:
    """Only the newest letters of each partition of the dead-letter topic are read
    (``read_per_partition``), and the read is cached for a few seconds. Payloads are
    never shown: they may hold what the trust sent."""
    viewer.require_role(*FEED_ROLES, what="reading dead letters")
    code = checked_trust(viewer, trust, ctx.ref)
    tail = await _reader(ctx).recent()
    visible = [
        r
        for r in tail.letters
        if (code is None or r.trust == code) and sees_feed(viewer, r.trust, ctx.ref)
    ]
    matched = sorted(
        (r for r in visible if reason is None or r.reason == reason),
        key=_newest_first,
        reverse=True,
    )
    return DeadLettersOut(
        letters=[letter_out(r) for r in matched[:limit]],
        matched=len(matched),
        counts_by_reason=count_by_reason(visible),
        read_per_partition=tail.per_partition,
        read_at=iso(tail.read_at_ms),
    )
