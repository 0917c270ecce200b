"""The gap series of one ICB x indicator x breakdown x measure, charted the NHS way."""

from __future__ import annotations

import math
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException
from fastapi import Query as QueryParam

from gapwatch.alerting.evaluator import method_name
from gapwatch.api.alert_schemas import OpenPeriodOut, SeriesOut, SeriesPointOut
from gapwatch.api.auth import AUTH_RESPONSES, ViewerDep
from gapwatch.api.deps import Context, ContextDep
from gapwatch.api.routes.indicators import RESPONSES, _icb_code
from gapwatch.api.timefmt import iso
from gapwatch.core.demographics import ETHNIC_GROUPS, UNKNOWN
from gapwatch.core.gap_series import (
    GAP_MEASURES,
    PERIOD_MS,
    closed_periods,
    gap_direction,
    open_period,
)
from gapwatch.core.indicators import CATALOGUE
from gapwatch.core.period_gaps import SeriesId
from gapwatch.core.spc import spc
from gapwatch.core.windows import DAY_MS

router = APIRouter(prefix="/v1", tags=["alerts"], responses=AUTH_RESPONSES)


def _series_id(ctx: Context, indicator: str, by: str, measure: str, group: str | None) -> SeriesId:
    if indicator not in CATALOGUE:
        raise HTTPException(404, f"unknown indicator {indicator!r}: see /v1/indicators")
    if by not in GAP_MEASURES:
        raise HTTPException(422, f"no gap series by {by!r}: use one of {', '.join(GAP_MEASURES)}")
    if measure not in GAP_MEASURES[by]:
        raise HTTPException(
            422, f"unknown measure {measure!r} for {by}: use one of {', '.join(GAP_MEASURES[by])}"
        )
    if by != "ethnic_group":
        if group is not None:
            raise HTTPException(422, "group applies only to by=ethnic_group")
        return SeriesId(indicator, by, measure)
    reference = ctx.settings.api.reference_ethnic_group
    choices = [g for g in ETHNIC_GROUPS if g not in (reference, UNKNOWN)]
    if group not in choices:
        raise HTTPException(
            422,
            f"by=ethnic_group needs group=one of {', '.join(choices)} (compared with {reference})",
        )
    return SeriesId(indicator, by, f"{measure}:{group}")


@router.get(
    "/icbs/{icb}/indicators/{indicator}/series",
    summary="The gap series by closed period with SPC limits, point types and rules",
    response_model=SeriesOut,
    responses=RESPONSES,
)
async def gap_series(
    ctx: ContextDep,
    viewer: ViewerDep,
    icb: str,
    indicator: str,
    by: Annotated[str, QueryParam(description="imd_quintile, imd_decile or ethnic_group")] = (
        "imd_quintile"
    ),
    measure: Annotated[str, QueryParam(description="difference, ratio or sii")] = "difference",
    group: Annotated[
        str | None, QueryParam(description="ethnic group vs the reference (by=ethnic_group)")
    ] = None,
    period: Annotated[Literal["day", "week"], QueryParam()] = "day",
    points: Annotated[int, QueryParam(ge=13, le=400, description="closed periods charted")] = 90,
) -> SeriesOut:
    code = _icb_code(ctx, icb)
    viewer.require_icb(code)
    sid = _series_id(ctx, indicator, by, measure, group)
    if ctx.days is None:
        raise HTTPException(503, "gap series are not available: no day-bucket reader")
    alerts = ctx.settings.alerts
    now = ctx.clock_ms()
    lateness = alerts.lateness_s * 1000
    starts = closed_periods(now, period, lateness, points)
    current = open_period(now, period)
    book = ctx.gap_book
    days = list(range(starts[0], current + PERIOD_MS[period], DAY_MS))
    versions = await ctx.days.day_versions_of(code, days)
    await book.refresh(versions, ctx.days.read_day_fields, starts[0], icbs=(code,))
    series = book.series(code, sid, period, starts)
    valued = [p for p in series if p.value is not None]
    ind = CATALOGUE[indicator]
    direction = gap_direction(ind, sid.base_measure)
    options = ctx.spc_options
    chart = spc([p.value for p in valued if p.value is not None], direction, options=options)
    out_points = [
        SeriesPointOut(
            period_start=iso(p.period_start_ms),
            value=c.value,
            mean=c.limits.mean,
            lpl=_finite(c.limits.lpl),
            upl=_finite(c.limits.upl),
            lower_2sigma=_finite(c.limits.lower_2sigma),
            upper_2sigma=_finite(c.limits.upper_2sigma),
            point_type=c.point_type,
            rule=c.special_cause,
            trial=c.limits.trial,
        )
        for p, c in zip(valued, chart.points, strict=True)
    ]
    open_out = None
    if current > starts[-1]:
        elapsed = min(max(now - current, 0), PERIOD_MS[period])
        value = book.open_gaps(code, period, current, sid, elapsed) if elapsed else None
        open_out = OpenPeriodOut(
            period_start=iso(current),
            value=value,
            elapsed_fraction=elapsed / PERIOD_MS[period],
            note="the period still open (and any closed one inside the lateness allowance) "
            "is not charted: late events may still change it",
        )
    return SeriesOut(
        icb=code,
        icb_name=ctx.ref.icbs[code].name,
        indicator=indicator,
        title=ind.title,
        by=by,
        measure=measure,
        group=sid.group,
        reference_group=ctx.settings.api.reference_ethnic_group if sid.group else None,
        period=period,
        improvement=direction,
        lateness_seconds=alerts.lateness_s,
        variation=chart.variation,
        method=method_name(options, period),
        points=out_points,
        missing=[iso(p.period_start_ms) for p in series if p.value is None],
        open_period=open_out,
    )


def _finite(x: float) -> float | None:
    """NaN limits (no moving range left to average) as JSON null, which the schema says."""
    return x if math.isfinite(x) else None
