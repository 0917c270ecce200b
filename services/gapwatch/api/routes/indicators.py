"""Indicator values for one ICB, split by a breakdown, over a window."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query

from gapwatch.api.deps import Context, ContextDep
from gapwatch.api.schemas import GroupOut, IndicatorValuesOut, ProblemOut, WindowOut
from gapwatch.api.timefmt import iso, parse_iso_ms
from gapwatch.core.indicators import BREAKDOWNS, CATALOGUE
from gapwatch.core.values import GroupValue, compute
from gapwatch.core.windows import DAY_MS, Window, aligned_window, parse_duration, plan
from gapwatch.core.windows import rolling_window as rolling

router = APIRouter(prefix="/v1", tags=["indicators"])

RATE_METHOD = (
    "Crude rate: numerator / (resident population x window days / 365.25) x 100,000. "
    "Population: ONS mid-2019 LSOA estimates mapped to LSOA 2021 (ethnic group: Census "
    "2021 usual residents). Residence groups use national IMD quintiles/deciles "
    "(1 = most deprived)."
)
PROPORTION_METHOD = (
    "Proportion: numerator events / denominator events in the window, by the patient's "
    "group. IMD groups are national quintiles/deciles (1 = most deprived)."
)


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
            return aligned_window(parse_iso_ms(start), parse_iso_ms(end))
        except ValueError as exc:
            raise HTTPException(422, f"bad start/end: {exc}") from exc
    try:
        return rolling(now, parse_duration(window or "28d"))
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from exc


def _group(v: GroupValue) -> GroupOut:
    return GroupOut(group=v.group, numerator=v.numerator, denominator=v.denominator, value=v.value)


@router.get(
    "/icbs/{icb}/indicators/{indicator}",
    summary="An indicator for one ICB by group",
    responses={404: {"model": ProblemOut}, 422: {"model": ProblemOut}, 503: {"model": ProblemOut}},
)
async def indicator_values(
    ctx: ContextDep,
    icb: str,
    indicator: str,
    by: Annotated[
        str, Query(description=f"breakdown: one of {', '.join(BREAKDOWNS)}")
    ] = "imd_quintile",
    window: Annotated[
        str | None,
        Query(description="rolling window ending this hour: 1h, 24h, 7d, 28d (any Nh/Nd)"),
    ] = None,
    start: Annotated[str | None, Query(description="ISO-8601 start (with end)")] = None,
    end: Annotated[str | None, Query(description="ISO-8601 end, exclusive (with start)")] = None,
) -> IndicatorValuesOut:
    code = _icb_code(ctx, icb)
    definition = CATALOGUE.get(indicator)
    if definition is None:
        raise HTTPException(404, f"unknown indicator {indicator!r}: see /v1/indicators")
    if by not in BREAKDOWNS:
        raise HTTPException(422, f"unknown breakdown {by!r}: use one of {', '.join(BREAKDOWNS)}")
    requested = _window(ctx, window or (None if start else definition.default_window), start, end)
    now = ctx.clock_ms()
    hour_floor = now - ctx.settings.ingest.hour_retention_days * DAY_MS
    actual, buckets = plan(requested, hour_floor)
    counts = await ctx.store.sum_counts([code], buckets)
    # Rates divide by the time actually elapsed: the current hour is only partly over.
    elapsed_ms = min(actual.end_ms, now) - actual.start_ms
    values = compute(definition, by, counts, ctx.ref.population, [code], max(elapsed_ms, 1))
    label = window or (f"{start}/{end}" if start else definition.default_window)
    return IndicatorValuesOut(
        icb=code,
        icb_name=ctx.ref.icbs[code].name,
        indicator=definition.id,
        title=definition.title,
        kind=definition.kind,
        unit=definition.unit,
        by=by,
        window=WindowOut(
            start=iso(actual.start_ms),
            end=iso(actual.end_ms),
            requested=label,
            days=max(elapsed_ms, 0) / DAY_MS,
        ),
        groups=[_group(g) for g in values.groups],
        total=_group(values.total),
        as_of=iso(now),
        imd_edition=ctx.ref.imd_edition,
        geography=ctx.ref.geography,
        method=RATE_METHOD if definition.kind == "rate" else PROPORTION_METHOD,
    )
