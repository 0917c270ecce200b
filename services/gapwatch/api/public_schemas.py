"""Response models of the public, disclosure-controlled endpoints (``/v1/public``) and
the CSV export, which is built from the same controlled answer."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from gapwatch.api.schemas import BenchmarkOut, BreakdownOut, EthnicGapOut, ImdGapOut

__all__ = [
    "DisclosureControlOut",
    "PublicGroupOut",
    "PublicIndicatorOut",
    "PublicValuesOut",
    "PublicWindowOut",
]


class PublicIndicatorOut(BaseModel):
    id: str
    title: str
    kind: str = Field(description="rate (per population) or proportion (of events)")
    unit: str
    improvement: str = Field(description="lower, higher or neutral is better")
    description: str
    breakdowns: list[BreakdownOut]
    windows: list[str] = Field(description="the windows the public endpoints offer")
    default_window: str


class PublicWindowOut(BaseModel):
    start: str = Field(description="inclusive, ISO-8601 UTC")
    end: str = Field(description="exclusive, ISO-8601 UTC")
    requested: str
    days: float = Field(description="days the window covers (rates are per year of these)")


class PublicGroupOut(BaseModel):
    group: str
    numerator: int | None = Field(
        description="events, disclosure-controlled: 0 or a multiple of 5; null when suppressed"
    )
    numerator_display: str = Field(description="the numerator as published: '*' if suppressed")
    denominator: int | None = Field(
        description="proportions: the denominator's events, controlled like the numerator "
        "(null when suppressed); null for rates"
    )
    denominator_display: str | None = Field(
        description="proportions: the denominator as published ('*' if suppressed)"
    )
    population: float | None = Field(
        description="rates: resident population (people, not events: not controlled)"
    )
    value: float | None = Field(
        description="from the published counts: per 100,000 population per year (rates) or "
        "0-1 (proportions); null when a count it needs is suppressed or has no denominator"
    )
    lower95: float | None = Field(description="lower 95% limit, from the published counts")
    upper95: float | None = Field(description="upper 95% limit, from the published counts")
    suppressed: bool = Field(description="the numerator or the denominator is suppressed")
    note: str | None = None


class DisclosureControlOut(BaseModel):
    applied: Literal[True] = True
    rule: str
    suppressed: list[str] = Field(
        description="groups with a suppressed count, and 'all' when the total's is; a "
        "reader cannot tell which are small and which hide another cell"
    )


class PublicValuesOut(BaseModel):
    icb: str = Field(description="the ICB's ODS code")
    icb_name: str
    indicator: str
    title: str
    kind: str
    unit: str
    by: str
    window: PublicWindowOut
    groups: list[PublicGroupOut]
    total: PublicGroupOut
    gap: ImdGapOut | EthnicGapOut | None = Field(
        description="inequality between groups, from the published counts; missing where a "
        "group it needs is suppressed"
    )
    benchmark: BenchmarkOut | None = Field(
        description="England (national figures need no disclosure control) against this "
        "ICB's published total"
    )
    as_of: str
    imd_edition: str
    geography: str
    method: str
    disclosure_control: DisclosureControlOut
