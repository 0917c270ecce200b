"""The indicator catalogue and the ICB list."""

from __future__ import annotations

from fastapi import APIRouter

from gapwatch.api.deps import ContextDep
from gapwatch.api.schemas import BreakdownOut, IcbOut, IndicatorOut
from gapwatch.core.indicators import BREAKDOWNS, CATALOGUE

router = APIRouter(prefix="/v1", tags=["catalogue"])


@router.get("/indicators", summary="The indicator catalogue")
async def indicators() -> list[IndicatorOut]:
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


@router.get("/icbs", summary="Integrated care boards (April 2024)")
async def icbs(ctx: ContextDep) -> list[IcbOut]:
    return [
        IcbOut(
            ods_code=i.ods_code,
            ons_code=i.ons_code,
            name=i.name,
            region_ods_code=i.region_ods_code,
            region_name=i.region_name,
        )
        for i in sorted(ctx.ref.icbs.values(), key=lambda i: i.ods_code)
    ]
