"""Public, disclosure-controlled indicators (``/v1/public``, no token needed).

Every count that leaves here has been through ``core.disclosure`` (via
``core.public_report``), over all of the indicator's breakdowns at once, and every
value, limit and gap is computed from the published counts. The CSV export builds its
rows from the same answer (``controlled_values``).

Windows are restricted on purpose: whole closed UTC days ending at the last midnight,
7, 28 or 91 of them; no hours and no custom start or end. Each published cell is only
safe on its own and with the other breakdowns of the same window: two overlapping
windows of an attacker's choosing (28 days to this hour, and 28 days to the previous
hour) would differ by a handful of events, and differencing their cells would undo the
control. A fixed, coarse set of windows that moves once a day keeps such differences
whole days wide. For the same reason an answer is computed once per UTC day and kept:
late events arriving during the day do not change what was already published for that
day's windows.
"""

from __future__ import annotations

from typing import Annotated, Any, Final

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi import Query as QueryParam

from gapwatch.api.answers import DAYS_PER_YEAR, JSON, Query, benchmark_out, gap_out
from gapwatch.api.count_cache import CachedAnswer
from gapwatch.api.deps import Context, ContextDep
from gapwatch.api.public_schemas import (
    DisclosureControlOut,
    PublicGroupOut,
    PublicIndicatorOut,
    PublicValuesOut,
    PublicWindowOut,
)
from gapwatch.api.routes.catalogue import icb_out
from gapwatch.api.routes.indicators import _icb_code
from gapwatch.api.schemas import (
    BreakdownOut,
    IcbOut,
    ProblemOut,
)
from gapwatch.api.timefmt import iso
from gapwatch.core import disclosure
from gapwatch.core.benchmark import benchmark
from gapwatch.core.counting import ENGLAND
from gapwatch.core.errors import StatisticsError
from gapwatch.core.group_stats import ReportOptions
from gapwatch.core.indicators import BREAKDOWNS, CATALOGUE
from gapwatch.core.public_report import PublicGroup, build_public_report
from gapwatch.core.report import area_total
from gapwatch.core.windows import DAY_MS, Window, decompose

__all__ = ["DISCLOSURE_HEADER", "PUBLIC_WINDOWS", "controlled_values", "router"]

router = APIRouter(prefix="/v1/public", tags=["public"])

PUBLIC_WINDOWS: Final = {"7d": 7, "28d": 28, "91d": 91}
"""Window id -> whole UTC days ending at the last midnight (module docstring: why)."""
DEFAULT_WINDOW: Final = "28d"
DISCLOSURE_HEADER: Final = {"X-Disclosure-Control": "applied"}
_NOT_PUBLIC: Final = ("start", "end", "standardised", "confidence")
RESPONSES: dict[int | str, dict[str, Any]] = {
    404: {"model": ProblemOut},
    422: {"model": ProblemOut},
    503: {"model": ProblemOut},
}


@router.get("/indicators", summary="The indicators published under disclosure control")
async def public_indicators() -> list[PublicIndicatorOut]:
    return [
        PublicIndicatorOut(
            id=i.id,
            title=i.title,
            kind=i.kind,
            unit=i.unit,
            improvement=i.improvement,
            description=i.description,
            breakdowns=[BreakdownOut(id=b, groups=list(BREAKDOWNS[b])) for b in i.breakdowns],
            windows=list(PUBLIC_WINDOWS),
            default_window=DEFAULT_WINDOW,
        )
        for i in CATALOGUE.values()
    ]


@router.get("/icbs", summary="Integrated care boards (April 2024)")
async def public_icbs(ctx: ContextDep) -> list[IcbOut]:
    return [icb_out(i) for i in sorted(ctx.ref.icbs.values(), key=lambda i: i.ods_code)]


@router.get(
    "/icbs/{icb}/indicators/{indicator}",
    summary="An indicator for one ICB by group, disclosure-controlled, with the gap and England",
    response_model=PublicValuesOut,
    responses=RESPONSES,
)
async def public_icb_indicator(
    ctx: ContextDep,
    request: Request,
    icb: str,
    indicator: str,
    by: Annotated[
        str, QueryParam(description=f"breakdown: one of {', '.join(BREAKDOWNS)}")
    ] = "imd_quintile",
    window: Annotated[
        str,
        QueryParam(
            description="whole UTC days ending at the last midnight: "
            f"{', '.join(PUBLIC_WINDOWS)} (no hours, no custom start or end)"
        ),
    ] = DEFAULT_WINDOW,
) -> Response:
    refused = [p for p in _NOT_PUBLIC if p in request.query_params]
    if refused:
        raise HTTPException(
            422,
            f"{', '.join(refused)} is not offered publicly: public figures use fixed windows "
            f"({', '.join(PUBLIC_WINDOWS)} of whole days to the last midnight) and crude "
            "values at 95%",
        )
    try:
        code = _icb_code(ctx, icb)
    except HTTPException as exc:
        raise HTTPException(
            404, f"unknown ICB {icb!r}: use an ODS code from /v1/public/icbs, e.g. QOP"
        ) from exc
    definition = CATALOGUE.get(indicator)
    if definition is None:
        raise HTTPException(404, f"unknown indicator {indicator!r}: see /v1/public/indicators")
    if by not in definition.breakdowns:
        raise HTTPException(
            422, f"unknown breakdown {by!r}: use one of {', '.join(definition.breakdowns)}"
        )
    days = PUBLIC_WINDOWS.get(window)
    if days is None:
        raise HTTPException(
            422,
            f"unknown window {window!r}: public windows are {', '.join(PUBLIC_WINDOWS)} "
            "(whole UTC days ending at the last midnight)",
        )
    now = ctx.clock_ms()
    end = now - now % DAY_MS
    key = ("public", code, indicator, by, window)
    body = ctx.responses.get(key, now)
    if body is None:
        api = ctx.settings.api
        options = ReportOptions(
            reference_ethnic_group=api.reference_ethnic_group,
            sii_repetitions=api.sii_repetitions,
            sii_seed=api.sii_seed,
        )
        span = Window(end - days * DAY_MS, end)
        query = Query(definition, by, window, span, tuple(decompose(span)), options)
        values = await controlled_values(ctx, code, query, days / DAYS_PER_YEAR, now)
        body = values.model_dump_json().encode()
        ctx.responses.put(key, CachedAnswer(DAY_MS, end, body))
    return Response(content=body, media_type=JSON, headers=DISCLOSURE_HEADER)


async def controlled_values(
    ctx: Context, icb: str, query: Query, years: float, as_of_ms: int
) -> PublicValuesOut:
    """``query`` for one ICB under disclosure control, with England's (uncontrolled,
    national) value as the benchmark; ``years`` is the window's elapsed time in years.
    Raises 422 for what cannot be published (an age-standardised rate)."""
    versions = await ctx.versions.of((icb, ENGLAND))
    local = await ctx.sums.get((icb,), query.buckets, versions[:1])
    england = await ctx.sums.get((ENGLAND,), query.buckets, versions[1:])
    ref = ctx.ref
    ind = query.indicator
    try:
        report = build_public_report(
            ind, query.by, local.counts, ref.population, (icb,), years, query.options
        )
    except StatisticsError as exc:
        raise HTTPException(422, str(exc)) from exc
    england_total = area_total(
        ind, england.counts, ref.population, tuple(ref.icbs), years, query.options
    )
    bench = benchmark(ind, report.total.stat, england_total, standardised=False)
    elapsed_ms = max(min(query.window.end_ms, as_of_ms) - query.window.start_ms, 0)
    return PublicValuesOut(
        icb=icb,
        icb_name=ref.icbs[icb].name,
        indicator=ind.id,
        title=ind.title,
        kind=ind.kind,
        unit=ind.unit,
        by=query.by,
        window=PublicWindowOut(
            start=iso(query.window.start_ms),
            end=iso(query.window.end_ms),
            requested=query.label,
            days=elapsed_ms / DAY_MS,
        ),
        groups=[_group(g) for g in report.groups],
        total=_group(report.total),
        gap=gap_out(report.gap, report.gap_methods),
        benchmark=benchmark_out(bench),
        as_of=iso(as_of_ms),
        imd_edition=ref.imd_edition,
        geography=ref.geography,
        method=report.statistic_method,
        disclosure_control=DisclosureControlOut(
            rule=disclosure.RULE, suppressed=list(report.suppressed)
        ),
    )


def _group(g: PublicGroup) -> PublicGroupOut:
    at95 = g.stat.estimate.find(0.95)
    den = g.denominator
    return PublicGroupOut(
        group=g.group,
        numerator=g.numerator.value,
        numerator_display=g.numerator.display,
        denominator=None if den is None else den.value,
        denominator_display=None if den is None else den.display,
        population=g.population,
        value=g.stat.estimate.value,
        lower95=at95.lower if at95 else None,
        upper95=at95.upper if at95 else None,
        suppressed=g.suppressed,
        note=g.stat.note,
    )
