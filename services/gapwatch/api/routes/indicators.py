"""Indicator values for an ICB, a region or England, by group, over a window."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from fastapi import Query as QueryParam

from gapwatch.api.answers import ENGLAND_ONS, Area, Query, answer
from gapwatch.api.auth import AUTH_RESPONSES, ViewerDep
from gapwatch.api.deps import Context, ContextDep
from gapwatch.api.schemas import IndicatorValuesOut, ProblemOut
from gapwatch.api.timefmt import parse_iso_ms
from gapwatch.core.counting import ENGLAND
from gapwatch.core.errors import StatisticsError
from gapwatch.core.group_stats import ReportOptions
from gapwatch.core.indicators import BREAKDOWNS, CATALOGUE
from gapwatch.core.stats.confidence import normalise_levels
from gapwatch.core.windows import (
    DAY_MS,
    Window,
    aligned_window,
    parse_duration,
    plan,
    whole_days,
)
from gapwatch.core.windows import rolling_window as rolling

router = APIRouter(prefix="/v1", tags=["indicators"], responses=AUTH_RESPONSES)


def _icb_code(ctx: Context, icb: str) -> str:
    code = icb.upper()
    if code in ctx.ref.icbs:
        return code
    for item in ctx.ref.icbs.values():
        if item.ons_code == code:
            return item.ods_code
    raise HTTPException(404, f"unknown ICB {icb!r}: use an ODS code from /v1/icbs, e.g. QOP")


def _window(ctx: Context, window: str | None, start: str | None, end: str | None) -> Window:
    now = ctx.clock_ms()
    if start is not None or end is not None:
        if start is None or end is None:
            raise HTTPException(422, "give both start and end, or neither (then use window)")
        try:
            found = aligned_window(parse_iso_ms(start), parse_iso_ms(end))
        except ValueError as exc:
            raise HTTPException(422, f"bad start/end: {exc}") from exc
        if found.end_ms > now + DAY_MS:
            raise HTTPException(
                422, "end is more than a day in the future: nothing is counted there"
            )
    else:
        try:
            found = rolling(now, parse_duration(window or "28d"))
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from exc
    kept_days = ctx.settings.ingest.day_retention_days
    if found.end_ms - found.start_ms > kept_days * DAY_MS:
        # Also bounds the work one request can ask for (one bucket per day or hour).
        raise HTTPException(422, f"window is longer than the {kept_days} days counts are kept")
    return found


def _levels(confidence: list[float] | None) -> tuple[float, ...]:
    try:
        extra = normalise_levels(confidence) if confidence else ()
    except StatisticsError as exc:
        raise HTTPException(422, str(exc)) from exc
    if any(level >= 1 for level in extra):
        # 100% limits are infinite for rates: nothing useful to publish.
        raise HTTPException(422, "confidence level must be below 1 (100%)")
    return tuple(dict.fromkeys((0.95, *extra)))


@dataclass(frozen=True)
class IndicatorParams:
    """The query parameters every indicator endpoint takes, checked only when an answer
    has to be computed (a cached answer was computed from exactly these)."""

    indicator: str
    by: str
    window: str | None
    start: str | None
    end: str | None
    confidence: list[float] | None
    standardised: bool

    def query(self, ctx: Context) -> Query:
        definition = CATALOGUE.get(self.indicator)
        if definition is None:
            raise HTTPException(404, f"unknown indicator {self.indicator!r}: see /v1/indicators")
        by = self.by
        if by not in BREAKDOWNS:
            raise HTTPException(
                422, f"unknown breakdown {by!r}: use one of {', '.join(BREAKDOWNS)}"
            )
        if self.standardised and definition.kind != "rate":
            raise HTTPException(
                422, f"{self.indicator} is a proportion: only rates can be age-standardised"
            )
        start, end = self.start, self.end
        window = self.window or (None if start else definition.default_window)
        requested = _window(ctx, window, start, end)
        if self.standardised:
            # The ESP2013 counts are kept in day buckets only.
            requested = whole_days(requested)
        hour_floor = ctx.clock_ms() - ctx.settings.ingest.hour_retention_days * DAY_MS
        actual, buckets = plan(requested, hour_floor)
        api = ctx.settings.api
        options = ReportOptions(
            levels=_levels(self.confidence),
            standardised=self.standardised,
            reference_ethnic_group=api.reference_ethnic_group,
            sii_repetitions=api.sii_repetitions,
            sii_seed=api.sii_seed,
        )
        label = self.window or (f"{start}/{end}" if start else definition.default_window)
        return Query(definition, by, label, actual, tuple(buckets), options)


def _params(
    indicator: str,
    by: Annotated[
        str, QueryParam(description=f"breakdown: one of {', '.join(BREAKDOWNS)}")
    ] = "imd_quintile",
    window: Annotated[
        str | None,
        QueryParam(description="rolling window ending this hour: 1h, 24h, 7d, 28d (any Nh/Nd)"),
    ] = None,
    start: Annotated[str | None, QueryParam(description="ISO-8601 start (with end)")] = None,
    end: Annotated[
        str | None, QueryParam(description="ISO-8601 end, exclusive (with start)")
    ] = None,
    confidence: Annotated[
        list[float] | None,
        QueryParam(
            description="extra confidence levels for the limits, e.g. 0.998 or 99.8 "
            "(repeatable; 95% is always given as lower95/upper95). Gaps use the first "
            "level requested."
        ),
    ] = None,
    standardised: Annotated[
        bool,
        QueryParam(
            description="rates only: directly age-standardised rates (ESP2013, Dobson limits)"
        ),
    ] = False,
) -> IndicatorParams:
    return IndicatorParams(indicator, by, window, start, end, confidence, standardised)


Params = Annotated[IndicatorParams, Depends(_params)]
RESPONSES: dict[int | str, dict[str, Any]] = {
    404: {"model": ProblemOut},
    422: {"model": ProblemOut},
    503: {"model": ProblemOut},
}


@router.get(
    "/icbs/{icb}/indicators/{indicator}",
    summary="An indicator for one ICB by group, with limits, the gap and England",
    response_model=IndicatorValuesOut,
    responses=RESPONSES,
)
async def icb_indicator(
    ctx: ContextDep, viewer: ViewerDep, request: Request, icb: str, params: Params
) -> Response:
    code = _icb_code(ctx, icb)
    viewer.require_icb(code)
    return await _answer(ctx, Area("icb", code, ctx.ref.icbs[code].name, (code,)), request, params)


@router.get(
    "/regions/{region}/indicators/{indicator}",
    summary="An indicator for one NHS England region (the sum of its ICBs), with England",
    response_model=IndicatorValuesOut,
    responses=RESPONSES,
)
async def region_indicator(
    ctx: ContextDep, viewer: ViewerDep, request: Request, region: str, params: Params
) -> Response:
    code = region.upper()
    icbs = tuple(sorted(i.ods_code for i in ctx.ref.icbs.values() if i.region_ods_code == code))
    if not icbs:
        known = sorted({i.region_ods_code for i in ctx.ref.icbs.values()})
        raise HTTPException(404, f"unknown region {region!r}: use one of {', '.join(known)}")
    viewer.require_area("region", icbs)
    name = ctx.ref.icbs[icbs[0]].region_name
    return await _answer(ctx, Area("region", code, name, icbs), request, params)


@router.get(
    "/england/indicators/{indicator}",
    summary="An indicator for England (every ICB), by group, with limits and the gap",
    response_model=IndicatorValuesOut,
    responses=RESPONSES,
)
async def england_indicator(
    ctx: ContextDep, viewer: ViewerDep, request: Request, params: Params
) -> Response:
    viewer.require_area("england", (ENGLAND,))
    area = Area("england", ENGLAND_ONS, "England", (ENGLAND,))
    return await _answer(ctx, area, request, params)


async def _answer(ctx: Context, area: Area, request: Request, params: IndicatorParams) -> Response:
    try:
        request_key = (request.scope["path"], request.scope["query_string"])
        route = request.scope.get("route")
        return await answer(area, request_key, lambda: params.query(ctx), ctx, route)
    except StatisticsError as exc:
        raise HTTPException(422, str(exc)) from exc
