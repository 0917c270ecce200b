"""Directly standardised rates with Dobson limits (stats-methods §5, ``calculate_dsr``).

A DSR is a weighted sum of age-specific rates, so its uncertainty is not Poisson; Dobson
et al. (1991) rescale the Byar limits of the total count O by sqrt(V/O), which keeps the
interval asymmetric like a count's. PHE never publishes a DSR from fewer than 10 events
(the rate would be too unstable), so those come back suppressed rather than as an error.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from gapwatch.core.errors import StatisticsError
from gapwatch.core.stats.confidence import (
    DEFAULT_LEVELS,
    Estimate,
    Interval,
    no_limits,
    normalise_levels,
)
from gapwatch.core.stats.poisson import byar_lower, byar_upper
from gapwatch.core.stats.rate import check_multiplier, format_multiplier

__all__ = [
    "DOBSON",
    "DOBSON_NONINDEPENDENT",
    "ESP2013",
    "ESP2013_WEIGHTS",
    "MIN_DSR_COUNT",
    "SUPPRESSED",
    "DsrResult",
    "dsr",
    "dsr_nonindependent",
]

ESP2013: Final[tuple[tuple[str, int], ...]] = (
    ("0-4", 5000),
    ("5-9", 5500),
    ("10-14", 5500),
    ("15-19", 5500),
    ("20-24", 6000),
    ("25-29", 6000),
    ("30-34", 6500),
    ("35-39", 7000),
    ("40-44", 7000),
    ("45-49", 7000),
    ("50-54", 7000),
    ("55-59", 6500),
    ("60-64", 6000),
    ("65-69", 5500),
    ("70-74", 5000),
    ("75-79", 4000),
    ("80-84", 2500),
    ("85-89", 1500),
    ("90+", 1000),
)
"""European Standard Population 2013 in PHE's 19 bands: the published 0 and 1-4 bands
merged into 0-4 and 90-94 with 95+ into 90+. Weights sum to 100000."""

ESP2013_WEIGHTS: Final[tuple[int, ...]] = tuple(weight for _, weight in ESP2013)
"""Just the ESP2013 weights, in band order, ready to pass as ``standard``."""

MIN_DSR_COUNT: Final = 10
"""PHE suppresses a DSR whose total count is below this."""

SUPPRESSED: Final = "dsr NA for total count < 10"
DOBSON: Final = "Dobson"
DOBSON_NONINDEPENDENT: Final = "Dobson, with confidence adjusted for non-independent events"


@dataclass(frozen=True, slots=True)
class DsrResult:
    """A DSR with the totals PHE publishes beside it (both kept when suppressed)."""

    total_count: float
    total_pop: float
    estimate: Estimate


def _check_bands(
    counts: Sequence[float],
    populations: Sequence[float],
    standard: Sequence[float],
    multiplier: float,
) -> None:
    """One count, population and weight per band; n > 0, w >= 0, x >= 0, some weight."""
    if not counts:
        raise StatisticsError("a DSR needs at least one band")
    if not len(counts) == len(populations) == len(standard):
        raise StatisticsError(
            f"a DSR needs one count, population and standard weight per band; got "
            f"{len(counts)}, {len(populations)} and {len(standard)}"
        )
    check_multiplier(multiplier)
    if not all(n > 0 for n in populations):  # `not >` also rejects NaN
        raise StatisticsError("every band's population must be > 0 for a DSR")
    if not all(w >= 0 for w in standard):
        raise StatisticsError("every standard population weight must be >= 0")
    if not all(x >= 0 for x in counts):
        raise StatisticsError("every band's count must be >= 0 for a DSR")
    if not math.fsum(standard) > 0:
        raise StatisticsError("the standard population weights sum to 0")


def _variance(
    counts: Sequence[float], populations: Sequence[float], standard: Sequence[float]
) -> float:
    """Var(DSR / multiplier) under independent Poisson counts: sum(x w^2/n^2) / (sum w)^2."""
    weighted = math.fsum(
        x * w * w / (n * n) for x, n, w in zip(counts, populations, standard, strict=True)
    )
    return weighted / math.fsum(standard) ** 2


def _dobson(
    counts: Sequence[float],
    populations: Sequence[float],
    standard: Sequence[float],
    variance: float,
    levels: tuple[float, ...],
    multiplier: float,
    method: str,
) -> DsrResult:
    """The DSR and its Dobson limits, or the suppressed result below 10 events.

    Suppression is decided before anything divides by the total count, so O = 0 is safe.
    """
    total = math.fsum(counts)
    total_pop = math.fsum(populations)
    if total < MIN_DSR_COUNT:
        missing = no_limits(levels)
        return DsrResult(total, total_pop, Estimate(None, missing, SUPPRESSED, method))
    weighted = math.fsum(w * x / n for x, n, w in zip(counts, populations, standard, strict=True))
    value = multiplier * weighted / math.fsum(standard)
    scale = math.sqrt(variance / total) * multiplier
    intervals = []
    for level in levels:
        lower = byar_lower(total, level)
        scaled_lower = None if lower is None else value + scale * (lower - total)
        scaled_upper = value + scale * (byar_upper(total, level) - total)
        intervals.append(Interval(level, scaled_lower, scaled_upper))
    statistic = f"dsr per {format_multiplier(multiplier)}"
    return DsrResult(total, total_pop, Estimate(value, tuple(intervals), statistic, method))


def dsr(
    counts: Sequence[float | None],
    populations: Sequence[float],
    standard: Sequence[float],
    levels: float | Iterable[float] = DEFAULT_LEVELS,
    multiplier: float = 100000.0,
) -> DsrResult:
    """DSR per ``multiplier`` from per-band counts and populations, weighted by ``standard``.

    The three sequences are aligned by band (e.g. ``ESP2013_WEIGHTS`` order). A missing
    (None) count is 0 events, as PHE treats it; populations must be present and > 0.
    """
    wanted = normalise_levels(levels)
    filled = [0.0 if x is None else float(x) for x in counts]
    _check_bands(filled, populations, standard, multiplier)
    variance = _variance(filled, populations, standard)
    return _dobson(filled, populations, standard, variance, wanted, multiplier, DOBSON)


def _check_frequencies(individuals: Sequence[Mapping[int, float | None]]) -> None:
    for band in individuals:
        for frequency, people in band.items():
            if not frequency >= 0:
                raise StatisticsError(f"an event frequency must be >= 0, got {frequency!r}")
            if people is not None and not people >= 0:
                raise StatisticsError(f"a count of individuals must be >= 0, got {people!r}")


def _nonindependent_variance(
    individuals: Sequence[Mapping[int, float | None]],
    populations: Sequence[float],
    standard: Sequence[float],
) -> float:
    """V* = sum over f of f^2 V_f, each V_f over the bands that list frequency f.

    Someone with f events moves the count by f at once, hence the f^2. The weight total
    in V_f covers only the bands where f appears (a listed None counts as 0 people but
    keeps its band's weight), which is what PHE's long-format table implies.
    """
    frequencies = sorted({f for band in individuals for f in band})
    total = 0.0
    for frequency in frequencies:
        bands = [i for i, band in enumerate(individuals) if frequency in band]
        people = [individuals[i][frequency] or 0.0 for i in bands]
        weights = [standard[i] for i in bands]
        if math.fsum(weights) > 0:
            pops = [populations[i] for i in bands]
            total += frequency * frequency * _variance(people, pops, weights)
    return total


def dsr_nonindependent(
    individuals: Sequence[Mapping[int, float | None]],
    populations: Sequence[float],
    standard: Sequence[float],
    levels: float | Iterable[float] = DEFAULT_LEVELS,
    multiplier: float = 100000.0,
) -> DsrResult:
    """DSR when one person can have several events (e.g. repeat admissions).

    ``individuals[i]`` maps an event frequency f to the number of people in band i with
    exactly f events (None = 0). The rate counts events (sum of f x people); the limits
    widen for the clustering of events within people. One population and weight per
    band by construction, so PHE's "more than one n per band" error cannot arise.
    """
    wanted = normalise_levels(levels)
    _check_frequencies(individuals)
    counts = [math.fsum(f * (u or 0.0) for f, u in band.items()) for band in individuals]
    _check_bands(counts, populations, standard, multiplier)
    variance = _nonindependent_variance(individuals, populations, standard)
    return _dobson(
        counts, populations, standard, variance, wanted, multiplier, DOBSON_NONINDEPENDENT
    )
