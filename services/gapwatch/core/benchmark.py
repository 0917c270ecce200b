"""An area against a benchmark (England) by PHE's funnel-plot significance."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from gapwatch.core.group_stats import PER, GroupStat
from gapwatch.core.indicators import Indicator
from gapwatch.core.stats.confidence import Estimate
from gapwatch.core.stats.funnel import proportion_significance, rate_significance

__all__ = ["Assessment", "Benchmark", "benchmark"]

Assessment = Literal["better", "similar", "worse", "not_compared"]


@dataclass(frozen=True, slots=True)
class Benchmark:
    area: str
    estimate: Estimate
    significance: str
    """PHE's funnel label, e.g. "High (0.025)" or "Not significant"."""
    assessment: Assessment
    method: str


def benchmark(
    indicator: Indicator,
    area: GroupStat,
    england: GroupStat,
    standardised: bool,
) -> Benchmark:
    """The area's total against England's by PHE funnel significance (95% and 99.8%)."""
    reference = england.estimate.value
    value = area.estimate.value
    method = (
        "PHE funnel-plot significance of the area against England's value: "
        + (
            "Wilson score funnel for proportions"
            if indicator.kind == "proportion"
            else "exact (< 10 events) or Byar Poisson limits of the count"
        )
        + "; 'High/Low (0.025)' is outside 95%, '(0.001)' outside 99.8%."
    )
    if reference is None or value is None:
        return Benchmark("England", england.estimate, "Not significant", "not_compared", method)
    if indicator.kind == "proportion":
        if area.denominator is None or area.denominator <= 0:
            label = "Not significant"
        else:
            label = proportion_significance(area.numerator, area.denominator, reference)
    else:
        # A derived denominator (events per unit of rate) works for crude rates and DSRs.
        derived = area.numerator / (value / PER) if value > 0 else None
        label = rate_significance(
            area.numerator,
            derived,
            reference / PER,
            rate_type="dsr" if standardised else "crude",
        )
    return Benchmark("England", england.estimate, label, _assess(label, indicator), method)


def _assess(label: str, indicator: Indicator) -> Assessment:
    if label.startswith("Not applicable"):
        return "not_compared"
    if not label.startswith(("High", "Low")):
        return "similar"
    if indicator.improvement == "neutral":
        return "not_compared"
    higher = label.startswith("High")
    return "better" if higher == (indicator.improvement == "higher") else "worse"
