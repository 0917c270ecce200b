"""HTTP models for gap series and alerts."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

__all__ = ["AlertOut", "SeriesOut", "SeriesPointOut"]


class SeriesPointOut(BaseModel):
    period_start: str
    value: float
    mean: float
    lpl: float | None = Field(
        description="lower process limit: mean - 2.66 x mean moving range; null when the "
        "limits cannot be computed (every moving range screened out, as NHSRplotthedots "
        "gives NaN for a perfectly flat series)"
    )
    upl: float | None = Field(description="upper process limit: mean + 2.66 x mean moving range")
    lower_2sigma: float | None
    upper_2sigma: float | None
    point_type: str = Field(
        description="common_cause, special_cause_improvement, special_cause_concern, "
        "special_cause_neutral_high or special_cause_neutral_low (NHSRplotthedots)"
    )
    rule: str = Field(description='the special-cause label, e.g. "Above UCL"; "Common Cause"')
    trial: bool = Field(description="limits from fewer than 13 points (no icons, no alerts)")


class OpenPeriodOut(BaseModel):
    period_start: str
    value: float | None
    elapsed_fraction: float = Field(description="how much of the period has passed")
    note: str


class SeriesOut(BaseModel):
    icb: str
    icb_name: str
    indicator: str
    title: str
    by: str
    measure: str
    group: str | None = Field(description="ethnic group compared with the reference group")
    reference_group: str | None
    period: Literal["day", "week"]
    improvement: str = Field(description="which way of the gap is improvement")
    lateness_seconds: int
    variation: str | None
    method: str
    points: list[SeriesPointOut]
    missing: list[str] = Field(description="closed periods with no gap value (no data)")
    open_period: OpenPeriodOut | None


class AlertOut(BaseModel):
    id: str
    kind: Literal["gap", "feed"]
    state: Literal["firing", "resolved"]
    change: Literal["new", "updated", "resolved"]
    summary: str
    rule: str | None
    icb: str | None
    indicator: str | None
    breakdown: str | None
    measure: str | None
    trust: str | None
    starts_at: str
    ends_at: str | None
    updated_at: str
    labels: dict[str, str]
    annotations: dict[str, str]
    detail: dict[str, Any]
