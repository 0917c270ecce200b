"""Answering an indicator query: counts for the window, PHE statistics, JSON.

The routes parse and check parameters; this module reads the window's counts (through
the ``WindowSums`` cache), builds the core ``Report`` for the area and England, and turns
it into the response model. Finished responses are kept, serialised, keyed by the query
and the write ids of every ICB they read, and by a time step (rates divide by elapsed
time, see ``tick_for``): repeated dashboard queries cost no Redis read and no statistics.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from fastapi import Response

from gapwatch.api.count_cache import CachedAnswer, CachedArea, RequestKey
from gapwatch.api.deps import Context
from gapwatch.api.schemas import (
    BenchmarkOut,
    EthnicComparisonOut,
    EthnicGapOut,
    GroupOut,
    ImdGapOut,
    IndicatorValuesOut,
    IntervalOut,
    WindowOut,
)
from gapwatch.api.timefmt import iso
from gapwatch.core.benchmark import Benchmark, benchmark
from gapwatch.core.counting import ENGLAND
from gapwatch.core.group_stats import GroupStat, ReportOptions
from gapwatch.core.indicators import Indicator
from gapwatch.core.inequality import EthnicGap, ImdGap
from gapwatch.core.refdata import ReferenceData
from gapwatch.core.report import Report, area_total, build_report
from gapwatch.core.windows import DAY_MS, Bucket, Window

__all__ = ["Area", "Query", "answer", "cache_key"]

ENGLAND_ONS = "E92000001"
MINUTE_MS = 60_000
DAYS_PER_YEAR = 365.25
JSON = "application/json"


@dataclass(frozen=True, slots=True)
class Area:
    kind: Literal["icb", "region", "england"]
    code: str
    name: str
    icbs: tuple[str, ...]
    """The ICB slots whose buckets are summed (England: the precomputed ENG slot)."""


@dataclass(frozen=True, slots=True)
class Query:
    indicator: Indicator
    by: str
    label: str
    window: Window
    """The window actually read (whole buckets)."""
    buckets: tuple[Bucket, ...]
    options: ReportOptions


async def answer(
    area: Area,
    request_key: RequestKey,
    make_query: Callable[[], Query],
    ctx: Context,
    route: object = None,
) -> Response:
    """The JSON response for a request over ``area``, from cache when nothing changed.

    ``request_key`` (path, query string) identifies the request; ``make_query`` checks
    its parameters and plans the window, and only runs when the answer is not cached.
    """
    now_ms = ctx.clock_ms()
    versions = await ctx.versions.of((*area.icbs, ENGLAND))
    key = cache_key(area.code, request_key, versions)
    body = ctx.responses.get(key, now_ms)
    if body is None:
        query = make_query()
        tick = tick_for(query.window)
        stamp = now_ms - now_ms % tick
        body = await _compute(area, query, ctx, versions, stamp)
        ctx.responses.put(key, CachedAnswer(tick, stamp, body))
        ctx.responses.remember(request_key, CachedArea(area.code, area.icbs, route))
    return Response(content=body, media_type=JSON)


def cache_key(
    area_code: str, request_key: RequestKey, versions: tuple[str | None, ...]
) -> tuple[object, ...]:
    return (area_code, request_key, versions)


def tick_for(window: Window) -> int:
    """The step in which a rate's elapsed time is counted: a thousandth of the window, at
    least a minute. A rate is then at most 0.1% above its value at the exact second, far
    inside its confidence interval, and a 28-day answer is recomputed every 40 minutes
    rather than every minute when no event arrives."""
    whole_seconds = (window.end_ms - window.start_ms) // 1000 // 1000 * 1000
    return max(MINUTE_MS, whole_seconds)


async def _compute(
    area: Area, query: Query, ctx: Context, versions: tuple[str | None, ...], stamp: int
) -> bytes:
    ref = ctx.ref
    local = await ctx.sums.get(area.icbs, query.buckets, versions[:-1])
    with_benchmark = area.kind != "england"
    england = (
        await ctx.sums.get((ENGLAND,), query.buckets, versions[-1:]) if with_benchmark else None
    )
    # Rates divide by the time elapsed (the current hour is only partly over), counted
    # in steps (tick_for) so a cached answer stays right for its step.
    elapsed_ms = max(min(query.window.end_ms, stamp) - query.window.start_ms, 0)
    years = max(elapsed_ms, 1) / DAY_MS / DAYS_PER_YEAR
    population_icbs = _population_icbs(area, ref)
    report = build_report(
        query.indicator,
        query.by,
        local.counts,
        ref.population,
        population_icbs,
        years,
        query.options,
    )
    bench = None
    if england is not None:
        england_total = area_total(
            query.indicator, england.counts, ref.population, tuple(ref.icbs), years, query.options
        )
        bench = benchmark(query.indicator, report.total, england_total, query.options.standardised)
    out = _present(area, query, report, bench, ref, stamp, elapsed_ms)
    return out.model_dump_json().encode()


def _population_icbs(area: Area, ref: ReferenceData) -> tuple[str, ...]:
    return tuple(ref.icbs) if area.kind == "england" else area.icbs


def _present(
    area: Area,
    query: Query,
    report: Report,
    bench: Benchmark | None,
    ref: ReferenceData,
    stamp: int,
    elapsed_ms: int,
) -> IndicatorValuesOut:
    ind = query.indicator
    return IndicatorValuesOut(
        area_type=area.kind,
        area=area.code,
        area_name=area.name,
        icb=area.code if area.kind == "icb" else None,
        icb_name=area.name if area.kind == "icb" else None,
        indicator=ind.id,
        title=ind.title,
        kind=ind.kind,
        unit=ind.unit,
        by=query.by,
        standardised=query.options.standardised,
        confidence=list(query.options.levels),
        window=WindowOut(
            start=iso(query.window.start_ms),
            end=iso(query.window.end_ms),
            requested=query.label,
            days=elapsed_ms / DAY_MS,
        ),
        groups=[_group(g) for g in report.groups],
        total=_group(report.total),
        gap=gap_out(report.gap, report.gap_methods),
        benchmark=benchmark_out(bench),
        as_of=iso(stamp),
        imd_edition=ref.imd_edition,
        geography=ref.geography,
        method=report.statistic_method + " " + _DENOMINATORS,
    )


_DENOMINATORS = (
    "Denominators: ONS mid-2019 LSOA population (single year of age and sex) mapped to "
    "LSOA 2021 and summed by national IMD quintile/decile; ethnic groups from Census 2021 "
    "TS021 usual residents. IMD groups are national (1 = most deprived)."
)


def _group(g: GroupStat) -> GroupOut:
    est = g.estimate
    at95 = est.find(0.95)
    return GroupOut(
        group=g.group,
        numerator=g.numerator,
        denominator=g.denominator,
        value=est.value,
        lower95=at95.lower if at95 else None,
        upper95=at95.upper if at95 else None,
        intervals=[
            IntervalOut(confidence=i.level, lower=i.lower, upper=i.upper) for i in est.intervals
        ],
        method=est.method,
        note=g.note,
    )


def gap_out(
    gap: ImdGap | EthnicGap | None, gap_methods: Sequence[str]
) -> ImdGapOut | EthnicGapOut | None:
    """The gap as served, for the signed-in and the public (controlled) answers alike."""
    methods = list(gap_methods)
    if isinstance(gap, ImdGap):
        return ImdGapOut(
            most_deprived=gap.most,
            least_deprived=gap.least,
            confidence=gap.level,
            absolute=gap.absolute.value,
            absolute_lower=gap.absolute.lower,
            absolute_upper=gap.absolute.upper,
            ratio=gap.ratio.value,
            ratio_lower=gap.ratio.lower,
            ratio_upper=gap.ratio.upper,
            sii=gap.sii.value,
            sii_lower=gap.sii.lower,
            sii_upper=gap.sii.upper,
            rii=gap.rii.value,
            rii_lower=gap.rii.lower,
            rii_upper=gap.rii.upper,
            note=gap.note,
            method=methods,
        )
    if isinstance(gap, EthnicGap):
        return EthnicGapOut(
            reference=gap.reference,
            confidence=gap.level,
            comparisons=[
                EthnicComparisonOut(
                    group=c.group,
                    difference=c.difference.value,
                    difference_lower=c.difference.lower,
                    difference_upper=c.difference.upper,
                    ratio=c.ratio.value,
                    ratio_lower=c.ratio.lower,
                    ratio_upper=c.ratio.upper,
                )
                for c in gap.comparisons
            ],
            method=methods,
        )
    return None


def benchmark_out(bench: Benchmark | None) -> BenchmarkOut | None:
    """England as the benchmark, for the signed-in and the public answers alike."""
    if bench is None:
        return None
    at95 = bench.estimate.find(0.95)
    return BenchmarkOut(
        area=bench.area,
        value=bench.estimate.value,
        lower95=at95.lower if at95 else None,
        upper95=at95.upper if at95 else None,
        significance=bench.significance,
        assessment=bench.assessment,
        method=bench.method,
    )
