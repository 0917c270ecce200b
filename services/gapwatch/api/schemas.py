"""HTTP response models (pydantic stays at the edge)."""

from __future__ import annotations

from pydantic import BaseModel, Field

__all__ = [
    "BreakdownOut",
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


class GroupOut(BaseModel):
    group: str
    numerator: int
    denominator: float | None = Field(
        description="events (proportions) or resident population (rates); null if none"
    )
    value: float | None = Field(
        description="per 100,000 population per year (rates) or 0-1 (proportions)"
    )


class IndicatorValuesOut(BaseModel):
    icb: str
    icb_name: str
    indicator: str
    title: str
    kind: str
    unit: str
    by: str
    window: WindowOut
    groups: list[GroupOut]
    total: GroupOut
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
