"""Per-trust feed freshness, scoped to the trusts the token may see.

A feed is visible to a national token, to an ICB token of the ICB the trust is in (its
``home_icb`` in the reference data) and to the trust's own token; a public token sees
none. The dead-letter endpoint uses the same rule (``sees_feed``, ``checked_trust``).
"""

from __future__ import annotations

from typing import Annotated, Final

from fastapi import APIRouter, HTTPException, Query

from gapwatch.api.auth import AUTH_RESPONSES, ViewerDep
from gapwatch.api.deps import ContextDep
from gapwatch.api.schemas import FreshnessOut, ProblemOut
from gapwatch.api.timefmt import iso
from gapwatch.core.access import Principal, Role
from gapwatch.core.refdata import ReferenceData

__all__ = ["FEED_ROLES", "TrustParam", "checked_trust", "router", "sees_feed"]

router = APIRouter(prefix="/v1", tags=["feeds"], responses=AUTH_RESPONSES)

FEED_ROLES: Final[tuple[Role, ...]] = ("national", "icb", "trust")
TrustParam = Annotated[
    str | None,
    Query(
        description="only this trust (ODS code, e.g. R0A); 403 outside the token's scope",
        pattern=r"^[A-Za-z0-9]{3,6}$",
    ),
]


def sees_feed(viewer: Principal, trust: str | None, ref: ReferenceData) -> bool:
    """Whether ``viewer`` may see the feed of ``trust`` (None: a feed of no known trust,
    which only a national token sees)."""
    if trust is None:
        return viewer.national
    known = ref.trusts.get(trust)
    return viewer.may_see_trust(trust, known.home_icb if known else None)


def checked_trust(viewer: Principal, trust: str | None, ref: ReferenceData) -> str | None:
    """The ``trust`` filter: 404 for a code not in the reference data, 403 for a trust
    outside the token's scope; None when no filter was asked for."""
    if trust is None:
        return None
    code = trust.upper()
    known = ref.trusts.get(code)
    if known is None:
        raise HTTPException(404, f"unknown trust {code}: no trust with this ODS code")
    viewer.require_trust(code, known.home_icb)
    return code


@router.get(
    "/freshness",
    summary="Per trust: newest event, events in the last hour, lag",
    responses={404: {"model": ProblemOut, "description": "no such trust"}},
)
async def freshness(
    ctx: ContextDep, viewer: ViewerDep, trust: TrustParam = None
) -> list[FreshnessOut]:
    """The feeds of the trusts this token may see: all for national, its ICBs' trusts
    for an ICB token, its own for a trust token."""
    viewer.require_role(*FEED_ROLES, what="feed freshness")
    code = checked_trust(viewer, trust, ctx.ref)
    now = ctx.clock_ms()
    rows = await ctx.store.freshness(now)
    out = []
    for row in rows.values():
        if code is not None and row.provider_code != code:
            continue
        if not sees_feed(viewer, row.provider_code, ctx.ref):
            continue
        known = ctx.ref.trusts.get(row.provider_code)
        out.append(
            FreshnessOut(
                provider_code=row.provider_code,
                provider_name=known.name if known else None,
                last_event_at=iso(row.last_event_ms) if row.last_event_ms else None,
                last_received_at=iso(row.last_received_ms) if row.last_received_ms else None,
                events_last_hour=row.events_last_hour,
                lag_seconds=(now - row.last_event_ms) / 1000 if row.last_event_ms else None,
            )
        )
    return out
