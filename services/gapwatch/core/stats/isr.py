"""Indirect standardisation: ratios (SMR-type) and rates (stats-methods §6).

Used where local age-specific rates are too small to trust (the DSR's weakness): the
reference population's age-specific rates are applied to the local population to get an
expected count E, and observed O is compared with it. O is the only random part, so the
limits are the count's Poisson limits over E (exact below 10 events, Byar from 10). There
is no small-count suppression, unlike DSRs.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from gapwatch.core.errors import StatisticsError
from gapwatch.core.stats.confidence import (
    DEFAULT_LEVELS,
    Estimate,
    normalise_levels,
)
from gapwatch.core.stats.rate import check_multiplier, format_multiplier, scaled_count

__all__ = ["IsrResult", "expected_count", "isr_rate", "isr_ratio", "reference_rate"]


@dataclass(frozen=True, slots=True)
class IsrResult:
    """An indirectly standardised statistic with its observed and expected counts.

    ``ref_rate`` is the crude reference rate per multiplier (rates only; None for ratios).
    The estimate is missing when E is 0 (no local population in any band with events
    in the reference), where O/E is undefined.
    """

    observed: float
    expected: float
    estimate: Estimate
    ref_rate: float | None = None


def _zero_if_missing(values: Sequence[float | None], what: str) -> list[float]:
    """PHE treats a missing local count/population or reference count as 0; negatives
    are rejected because they can only be data errors."""
    filled = [0.0 if v is None else float(v) for v in values]
    if not all(v >= 0 for v in filled):  # `not >=` also rejects NaN
        raise StatisticsError(f"every {what} must be >= 0")
    return filled


def _check_reference(
    populations: Sequence[float | None],
    ref_counts: Sequence[float | None],
    ref_populations: Sequence[float],
) -> None:
    """Bands align by position, so the lengths must agree; a reference band needs people.

    PHE does not check a zero reference population and would divide by zero; we refuse.
    """
    if not populations:
        raise StatisticsError("indirect standardisation needs at least one band")
    if not len(populations) == len(ref_counts) == len(ref_populations):
        raise StatisticsError(
            f"need one local population, reference count and reference population per "
            f"band; got {len(populations)}, {len(ref_counts)} and {len(ref_populations)}"
        )
    if not all(n > 0 for n in ref_populations):
        raise StatisticsError("every reference population must be > 0")


def expected_count(
    populations: Sequence[float | None],
    ref_counts: Sequence[float | None],
    ref_populations: Sequence[float],
) -> float:
    """E = sum over bands of X_i / N_i * n_i: events if the area had the reference's rates.

    A zero or missing local population is allowed (the band adds nothing).
    """
    _check_reference(populations, ref_counts, ref_populations)
    pops = _zero_if_missing(populations, "local population")
    refs = _zero_if_missing(ref_counts, "reference count")
    return math.fsum(x / big_n * n for x, big_n, n in zip(refs, ref_populations, pops, strict=True))


def reference_rate(
    ref_counts: Sequence[float | None],
    ref_populations: Sequence[float],
    multiplier: float = 100000.0,
) -> float:
    """The reference population's crude rate, sum X / sum N per ``multiplier``."""
    check_multiplier(multiplier)
    refs = _zero_if_missing(ref_counts, "reference count")
    return math.fsum(refs) / math.fsum(ref_populations) * multiplier


def _observed(counts: Sequence[float | None] | None, observed: float | None) -> float:
    """O from the per-band counts or supplied whole; exactly one source, so a supplied
    total can never silently disagree with counts that were also passed."""
    if observed is not None:
        if counts is not None:
            raise StatisticsError("give per-band counts or an observed total, not both")
        if not observed >= 0:
            raise StatisticsError(f"an observed total must be >= 0, got {observed!r}")
        return float(observed)
    if counts is None:
        raise StatisticsError("give per-band counts or an observed total")
    return math.fsum(_zero_if_missing(counts, "local count"))


def isr_ratio(
    counts: Sequence[float | None] | None,
    populations: Sequence[float | None],
    ref_counts: Sequence[float | None],
    ref_populations: Sequence[float],
    *,
    observed: float | None = None,
    levels: float | Iterable[float] = DEFAULT_LEVELS,
    refvalue: float = 1.0,
) -> IsrResult:
    """Indirectly standardised ratio O/E x ``refvalue`` (100 gives the usual SMR).

    Sequences are aligned by band. Pass ``counts=None`` with ``observed`` when only the
    area's total is known (PHE's ``observed_totals``).
    """
    wanted = normalise_levels(levels)
    check_multiplier(refvalue)
    total = _observed(counts, observed)
    expected = expected_count(populations, ref_counts, ref_populations)
    statistic = f"indirectly standardised ratio x {format_multiplier(refvalue)}"
    return IsrResult(total, expected, scaled_count(total, expected, refvalue, wanted, statistic))


def isr_rate(
    counts: Sequence[float | None] | None,
    populations: Sequence[float | None],
    ref_counts: Sequence[float | None],
    ref_populations: Sequence[float],
    *,
    observed: float | None = None,
    levels: float | Iterable[float] = DEFAULT_LEVELS,
    multiplier: float = 100000.0,
) -> IsrResult:
    """Indirectly standardised rate: O/E times the reference's crude rate per ``multiplier``.

    The ratio put back on a rate scale, so it reads like a rate while keeping the
    ratio's stability. Arguments as for ``isr_ratio``.
    """
    wanted = normalise_levels(levels)
    total = _observed(counts, observed)
    expected = expected_count(populations, ref_counts, ref_populations)
    ref_rate = reference_rate(ref_counts, ref_populations, multiplier)
    statistic = f"indirectly standardised rate per {format_multiplier(multiplier)}"
    estimate = scaled_count(total, expected, ref_rate, wanted, statistic)
    return IsrResult(total, expected, estimate, ref_rate)
