"""HTTP response models (pydantic stays at the edge)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

__all__ = [
    "BenchmarkOut",
    "BreakdownOut",
    "EthnicComparisonOut",
    "EthnicGapOut",
    "ImdGapOut",
    "IntervalOut",
    "FreshnessOut",
    "GroupOut",
    "IcbOut",
    "IndicatorOut",
    "IndicatorValuesOut",
    "ProblemOut",
    "WindowOut",
]


class ProblemOut(BaseModel):
    detail: str


class BreakdownOut(BaseModel):
    id: str
    groups: list[str]


class IndicatorOut(BaseModel):
    id: str
    title: str
    kind: str = Field(description="rate (per population) or proportion (of events)")
    unit: str
    improvement: str = Field(description="lower, higher or neutral is better")
    description: str
    numerator: str
    denominator: str = Field(description="a measure, or 'resident population'")
    default_window: str
    breakdowns: list[BreakdownOut]


class IcbOut(BaseModel):
    ods_code: str
    ons_code: str
    name: str
    region_ods_code: str
    region_name: str


class WindowOut(BaseModel):
    start: str = Field(description="inclusive, ISO-8601 UTC")
    end: str = Field(description="exclusive, ISO-8601 UTC")
    requested: str
    days: float = Field(description="days of the window already elapsed (rates use this)")


class IntervalOut(BaseModel):
    confidence: float = Field(description="e.g. 0.95 or 0.998")
    lower: float | None
    upper: float | None


class GroupOut(BaseModel):
    group: str
    numerator: int
    denominator: float | None = Field(
        description="events (proportions) or resident population (rates); null if none"
    )
    value: float | None = Field(
        description="per 100,000 population per year (rates; a DSR when standardised) or "
        "0-1 (proportions); null when there is no denominator or a DSR is suppressed"
    )
    lower95: float | None = Field(description="lower 95% confidence limit")
    upper95: float | None = Field(description="upper 95% confidence limit")
    intervals: list[IntervalOut] = Field(description="limits at every requested confidence")
    method: str = Field(description="PHE method of the limits: Wilson, Exact, Byars, Dobson")
    note: str | None = Field(None, description="why a value is missing or what it leaves out")


class ImdGapOut(BaseModel):
    """Most vs least deprived, and the slope and relative index of inequality."""

    kind: Literal["imd"] = "imd"
    most_deprived: str = Field(description="group 1: IMD quintile/decile 1")
    least_deprived: str = Field(description="IMD quintile 5 or decile 10")
    confidence: float
    absolute: float | None = Field(description="most deprived minus least deprived")
    absolute_lower: float | None
    absolute_upper: float | None
    ratio: float | None = Field(description="most deprived over least deprived")
    ratio_lower: float | None
    ratio_upper: float | None
    sii: float | None = Field(
        description="slope index of inequality, in the indicator's unit: the modelled "
        "value at the least deprived end minus the most deprived end (PHE convention)"
    )
    sii_lower: float | None
    sii_upper: float | None
    rii: float | None = Field(
        description="relative index of inequality: the modelled value at the least deprived "
        "end over the most deprived end (PHE convention: below 1 when values are higher "
        "in more deprived areas)"
    )
    rii_lower: float | None
    rii_upper: float | None
    note: str | None = Field(None, description="why the SII/RII is missing, if it is")
    method: list[str]


class EthnicComparisonOut(BaseModel):
    group: str
    difference: float | None = Field(description="this group minus the reference group")
    difference_lower: float | None
    difference_upper: float | None
    ratio: float | None = Field(description="this group over the reference group")
    ratio_lower: float | None
    ratio_upper: float | None


class EthnicGapOut(BaseModel):
    kind: Literal["ethnic_group"] = "ethnic_group"
    reference: str
    confidence: float
    comparisons: list[EthnicComparisonOut]
    method: list[str]


class BenchmarkOut(BaseModel):
    area: str = Field(description="the comparator, England")
    value: float | None
    lower95: float | None
    upper95: float | None
    significance: str = Field(
        description="PHE funnel label of this area vs the comparator: High/Low (0.025) "
        "outside 95%, High/Low (0.001) outside 99.8%, Not significant"
    )
    assessment: Literal["better", "similar", "worse", "not_compared"]
    method: str


class IndicatorValuesOut(BaseModel):
    area_type: Literal["icb", "region", "england"]
    area: str = Field(description="ICB or region ODS code, or E92000001 for England")
    area_name: str
    icb: str | None = Field(description="the ICB's ODS code (ICB responses only)")
    icb_name: str | None
    indicator: str
    title: str
    kind: str
    unit: str
    by: str
    standardised: bool = Field(description="values are ESP2013 age-standardised rates (DSRs)")
    confidence: list[float] = Field(description="levels of the limits in each group")
    window: WindowOut
    groups: list[GroupOut]
    total: GroupOut
    gap: ImdGapOut | EthnicGapOut | None = Field(
        description="inequality between groups (IMD and ethnic-group breakdowns)"
    )
    benchmark: BenchmarkOut | None = Field(description="this area's total against England")
    as_of: str
    imd_edition: str
    geography: str
    method: str


class FreshnessOut(BaseModel):
    provider_code: str
    provider_name: str | None
    last_event_at: str | None
    last_received_at: str | None
    events_last_hour: int
    lag_seconds: float | None = Field(
        description="seconds from the newest event time to now (how stale the feed is)"
    )


class DeadLetterOut(BaseModel):
    """One dead letter, without its payload (what the trust sent stays in Kafka)."""

    partition: int = Field(description="partition of the dead-letter topic")
    offset: int = Field(description="offset in that partition")
    trust: str | None = Field(
        description="the trust's ODS code: the source message's key, set by its producer"
    )
    reason: str | None = Field(description="reason code, e.g. too_late (see docs)")
    detail: str = Field(description="what was wrong, as the ingest worker described it")
    failed_at: str | None = Field(description="when the worker dead-lettered it (UTC)")
    source_topic: str | None
    source_partition: int | None
    source_offset: int | None
    batch_index: int | None = Field(description="the event's index in a batch message")


class DeadLettersOut(BaseModel):
    letters: list[DeadLetterOut] = Field(description="newest first, at most `limit`")
    matched: int = Field(description="letters read that match every filter (before `limit`)")
    counts_by_reason: dict[str, int] = Field(
        description="letters per reason among those read that this token may see (and "
        "that match `trust`), most frequent first; `-` for a letter without a reason"
    )
    read_per_partition: int = Field(
        description="only the newest this many letters of each partition are read"
    )
    read_at: str = Field(description="when the topic was read (answers are cached briefly)")
