"""Small-area drill-down: the LSOAs of an ICB with the highest rates.

Counts come from the per-LSOA day fields (``core.counting.LSOA_MEASURES``), so the
window is widened to whole UTC days. Every count passes disclosure control
(``core.disclosure``) before anything is computed from it: rates and their limits come
from the rounded count, and a suppressed count (1-7) has no rate. The list is ranked by
the *published* rate (suppressed and population-less LSOAs last, then by code), so an
LSOA's place in it reveals nothing its published numbers do not.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi import Query as QueryParam
from pydantic import BaseModel, Field

from gapwatch.api.answers import DAYS_PER_YEAR, JSON, tick_for
from gapwatch.api.auth import AUTH_RESPONSES, ViewerDep
from gapwatch.api.count_cache import CachedAnswer
from gapwatch.api.deps import Context, ContextDep
from gapwatch.api.routes.indicators import _icb_code, _window
from gapwatch.api.schemas import ProblemOut, WindowOut
from gapwatch.api.timefmt import iso
from gapwatch.core.counting import LSOA_MEASURES
from gapwatch.core.disclosure import RULE, ControlledCount, control
from gapwatch.core.indicators import CATALOGUE, Indicator
from gapwatch.core.refdata import ReferenceData
from gapwatch.core.small_areas import (
    FLAG_DEFINITION,
    LadProfile,
    deprived_in_affluent_place,
    lad_profiles,
)
from gapwatch.core.stats.rate import crude_rate
from gapwatch.core.windows import DAY_MS, Window, whole_days

__all__ = ["LsoaListOut", "LsoaOut", "SUPPORTED", "router"]

router = APIRouter(prefix="/v1", tags=["small areas"], responses=AUTH_RESPONSES)

SUPPORTED = tuple(i.id for i in CATALOGUE.values() if i.numerator in LSOA_MEASURES)
"""Indicators with per-LSOA counts: the rates."""
PER = 100_000.0
DISCLOSURE = (
    f"{RULE} Applied to each LSOA's count over the window (no total is shown); rate and "
    "95% limits are computed from the rounded count. Ranked by the published rate."
)


class LsoaOut(BaseModel):
    lsoa: str = Field(description="LSOA 2021 code")
    lad: str | None = Field(description="local authority district (LAD 2024) code")
    lad_name: str | None
    imd_decile: int | None = Field(description="national IMD 2025 decile, 1 = most deprived")
    imd_quintile: int | None
    numerator: int | None = Field(description="count rounded to 5; null when suppressed (1-7)")
    numerator_display: str = Field(description='the count as published: "35", "0" or "*"')
    population: float | None = Field(description="residents (of the indicator's ages)")
    rate: float | None = Field(description="per 100,000 per year, from the rounded count")
    lower95: float | None
    upper95: float | None
    deprived_in_affluent_place: bool = Field(description=FLAG_DEFINITION)


class LsoaListOut(BaseModel):
    icb: str
    icb_name: str
    indicator: str
    title: str
    window: WindowOut
    disclosure: str
    lsoas: list[LsoaOut]


@dataclass(frozen=True, slots=True)
class _Views:
    ref: ReferenceData
    lads: dict[str, LadProfile]
    lsoas: dict[str, frozenset[str]]
    """ICB -> its LSOA 2021 codes."""


_VIEWS: dict[int, _Views] = {}


def _views(ref: ReferenceData) -> _Views:
    """LAD profiles and each ICB's LSOAs, computed once per reference data set (it
    never changes once loaded; the ``ref`` kept here makes the id key safe)."""
    found = _VIEWS.get(id(ref))
    if found is None or found.ref is not ref:
        by_icb: dict[str, set[str]] = {}
        for code, area in ref.areas.items():
            if code == area.lsoa21:
                by_icb.setdefault(area.icb, set()).add(code)
        _VIEWS.clear()
        found = _VIEWS[id(ref)] = _Views(
            ref, lad_profiles(ref), {icb: frozenset(c) for icb, c in by_icb.items()}
        )
    return found


@router.get(
    "/icbs/{icb}/lsoas",
    summary="The LSOAs of an ICB with the highest rates, disclosure-controlled",
    description=f"Rate indicators only: {', '.join(SUPPORTED)}. {FLAG_DEFINITION}",
    response_model=LsoaListOut,
    responses={404: {"model": ProblemOut}, 422: {"model": ProblemOut}, 503: {"model": ProblemOut}},
)
async def icb_lsoas(
    ctx: ContextDep,
    viewer: ViewerDep,
    request: Request,
    icb: str,
    indicator: Annotated[
        str, QueryParam(description=f"one of {', '.join(SUPPORTED)}")
    ] = "ed_attendance_rate",
    window: Annotated[
        str | None, QueryParam(description="rolling window, whole days: 7d, 28d (any Nh/Nd)")
    ] = None,
    start: Annotated[str | None, QueryParam(description="ISO-8601 start (with end)")] = None,
    end: Annotated[str | None, QueryParam(description="ISO-8601 end (with start)")] = None,
    limit: Annotated[int, QueryParam(ge=1, le=200, description="LSOAs listed")] = 20,
) -> Response:
    code = _icb_code(ctx, icb)
    viewer.require_icb(code)
    definition = CATALOGUE.get(indicator)
    if definition is None or indicator not in SUPPORTED:
        known = "unknown indicator" if definition is None else "no per-LSOA counts for"
        raise HTTPException(
            422, f"{known} {indicator!r}: LSOA drill-down supports {', '.join(SUPPORTED)}"
        )
    requested = whole_days(_window(ctx, window or "28d", start, end))
    kept_days = ctx.settings.ingest.lsoa_retention_days
    if requested.start_ms < ctx.clock_ms() - (kept_days + 1) * DAY_MS:
        raise HTTPException(
            422, f"small-area counts are kept {kept_days} days: ask for a window within them"
        )
    now = ctx.clock_ms()
    versions = await ctx.versions.of((code,))
    key = ("lsoas", code, (request.scope["path"], request.scope["query_string"]), versions)
    body = ctx.responses.get(key, now)
    if body is None:
        tick = tick_for(requested)
        stamp = now - now % tick
        label = window or (f"{start}/{end}" if start else "28d")
        out = await _compute(ctx, code, definition, requested, label, limit, stamp)
        body = out.model_dump_json().encode()
        ctx.responses.put(key, CachedAnswer(tick, stamp, body))
    return Response(content=body, media_type=JSON)


async def _compute(
    ctx: Context,
    icb: str,
    definition: Indicator,
    window: Window,
    label: str,
    limit: int,
    stamp: int,
) -> LsoaListOut:
    ref = ctx.ref
    days = list(range(window.start_ms, window.end_ms, DAY_MS))
    counts = await ctx.store.lsoa_counts(icb, days, definition.numerator)
    elapsed_ms = max(min(window.end_ms, stamp) - window.start_ms, 0)
    years = max(elapsed_ms, 1) / DAY_MS / DAYS_PER_YEAR
    views = _views(ref)
    # Every LSOA of the ICB, counted or not, plus any counted here that the lookup
    # places elsewhere (a 2011 code resolved to a part in another ICB).
    codes = views.lsoas.get(icb, frozenset()) | counts.keys()
    controlled = control({c: counts.get(c, 0) for c in codes})
    ranked: list[tuple[bool, float, str, float | None]] = []
    for lsoa in codes:
        published = controlled.cells[lsoa].value
        people = ref.lsoa_population.of(lsoa, definition.population_ages)
        rate = None if published is None or not people else published / (people * years) * PER
        ranked.append((rate is None, -(rate or 0.0), lsoa, people))
    ranked.sort()
    rows = [
        _row(lsoa, controlled.cells[lsoa], people, years, ref, views.lads)
        for _, _, lsoa, people in ranked[:limit]
    ]
    return LsoaListOut(
        icb=icb,
        icb_name=ref.icbs[icb].name,
        indicator=definition.id,
        title=definition.title,
        window=WindowOut(
            start=iso(window.start_ms),
            end=iso(window.end_ms),
            requested=label,
            days=elapsed_ms / DAY_MS,
        ),
        disclosure=DISCLOSURE,
        lsoas=rows,
    )


def _row(
    lsoa: str,
    shown: ControlledCount,
    people: float | None,
    years: float,
    ref: ReferenceData,
    lads: dict[str, LadProfile],
) -> LsoaOut:
    rate: float | None = None
    lower: float | None = None
    upper: float | None = None
    if shown.value is not None and people:
        estimate = crude_rate(shown.value, people * years, 0.95, PER)
        rate = estimate.value
        at95 = estimate.find(0.95)
        if at95 is not None:
            lower, upper = at95.lower, at95.upper
    area = ref.areas.get(lsoa)
    lad = lads.get(area.lad) if area is not None else None
    return LsoaOut(
        lsoa=lsoa,
        lad=(area.lad or None) if area is not None else None,
        lad_name=(lad.name or None) if lad is not None else None,
        imd_decile=area.imd_decile if area is not None else None,
        imd_quintile=area.imd_quintile if area is not None else None,
        numerator=shown.value,
        numerator_display=shown.display,
        population=people,
        rate=rate,
        lower95=lower,
        upper95=upper,
        deprived_in_affluent_place=(
            deprived_in_affluent_place(area, lads) if area is not None else False
        ),
    )
