"""The indicator catalogue and the ICB list."""

from __future__ import annotations

from fastapi import APIRouter

from gapwatch.api.auth import AUTH_RESPONSES, ViewerDep
from gapwatch.api.deps import ContextDep
from gapwatch.api.schemas import BreakdownOut, IcbOut, IndicatorOut
from gapwatch.core.access import Role
from gapwatch.core.indicators import BREAKDOWNS, CATALOGUE
from gapwatch.core.refdata import Icb

SIGNED_IN: tuple[Role, ...] = ("national", "icb", "trust")
"""Roles that read the signed-in API (a public token reads /v1/public only)."""

router = APIRouter(prefix="/v1", tags=["catalogue"], responses=AUTH_RESPONSES)


@router.get("/indicators", summary="The indicator catalogue")
async def indicators(viewer: ViewerDep) -> list[IndicatorOut]:
    viewer.require_role(*SIGNED_IN, what="this catalogue (the public one is /v1/public/indicators)")
    return [
        IndicatorOut(
            id=i.id,
            title=i.title,
            kind=i.kind,
            unit=i.unit,
            improvement=i.improvement,
            description=i.description,
            numerator=i.numerator,
            denominator=i.denominator or "resident population",
            default_window=i.default_window,
            breakdowns=[BreakdownOut(id=b, groups=list(BREAKDOWNS[b])) for b in i.breakdowns],
        )
        for i in CATALOGUE.values()
    ]


@router.get(
    "/icbs",
    summary="Integrated care boards (April 2024) this token may see",
    description="A national token: all 42. An ICB token: its own. A trust token: the ICB "
    "its trusts are in (for context; a trust token reads feeds, not indicators). The "
    "public list is /v1/public/icbs.",
)
async def icbs(ctx: ContextDep, viewer: ViewerDep) -> list[IcbOut]:
    viewer.require_role(*SIGNED_IN, what="this list (the public one is /v1/public/icbs)")
    if viewer.role == "icb":
        visible = set(viewer.icbs)
    elif viewer.role == "trust":
        homes = (ctx.ref.trusts.get(t) for t in viewer.trusts)
        visible = {t.home_icb for t in homes if t is not None and t.home_icb is not None}
    else:
        visible = set(ctx.ref.icbs)
    return [
        icb_out(i)
        for i in sorted(ctx.ref.icbs.values(), key=lambda i: i.ods_code)
        if i.ods_code in visible
    ]


def icb_out(i: Icb) -> IcbOut:
    return IcbOut(
        ods_code=i.ods_code,
        ons_code=i.ons_code,
        name=i.name,
        region_ods_code=i.region_ods_code,
        region_name=i.region_name,
    )
