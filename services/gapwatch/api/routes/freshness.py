"""Per-trust feed freshness."""

from __future__ import annotations

from fastapi import APIRouter

from gapwatch.api.deps import ContextDep
from gapwatch.api.schemas import FreshnessOut
from gapwatch.api.timefmt import iso

router = APIRouter(prefix="/v1", tags=["feeds"])


@router.get("/freshness", summary="Per trust: newest event, events in the last hour, lag")
async def freshness(ctx: ContextDep) -> list[FreshnessOut]:
    now = ctx.clock_ms()
    rows = await ctx.store.freshness(now)
    out = []
    for row in rows.values():
        trust = ctx.ref.trusts.get(row.provider_code)
        out.append(
            FreshnessOut(
                provider_code=row.provider_code,
                provider_name=trust.name if trust else None,
                last_event_at=iso(row.last_event_ms) if row.last_event_ms else None,
                last_received_at=iso(row.last_received_ms) if row.last_received_ms else None,
                events_last_hour=row.events_last_hour,
                lag_seconds=(now - row.last_event_ms) / 1000 if row.last_event_ms else None,
            )
        )
    return out
