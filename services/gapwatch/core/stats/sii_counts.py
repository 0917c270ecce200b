"""The SII of event counts: ``sii_from_counts`` and the rows it builds (stats-methods §7).

PHE's ``phe_sii`` takes values with SEs or 95% limits; callers holding counts per quantile
(the report does) would otherwise each turn them into rates with Poisson limits or
proportions with Wilson limits. This front end does that once and hands the rows to
``sii``, so it sits on top of ``sii`` and nothing in the method depends on it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Literal

from gapwatch.core.errors import StatisticsError
from gapwatch.core.stats.confidence import DEFAULT_LEVELS
from gapwatch.core.stats.poisson import count_limits
from gapwatch.core.stats.sii import DEFAULT_REPETITIONS, DEFAULT_SEED, SiiInput, SiiResult, sii
from gapwatch.core.stats.sii_scale import Z95, ValueType
from gapwatch.core.stats.sii_validation import number

__all__ = ["sii_from_counts"]


def sii_from_counts(
    counts: Sequence[float],
    populations: Sequence[float],
    *,
    kind: Literal["rate", "proportion"],
    denominators: Sequence[float] | None = None,
    multiplier: float = 1.0,
    levels: float | Iterable[float] = DEFAULT_LEVELS,
    repetitions: int = DEFAULT_REPETITIONS,
    seed: int = DEFAULT_SEED,
    rii: bool = True,
) -> SiiResult:
    """SII of event counts per quantile, listed from most deprived (quantile 1) onwards.

    ``rate``: value = count / population * |multiplier| (e.g. per 100,000) with 95%
    limits from the Poisson count (exact below 10, Byar from 10); the sign of the
    multiplier goes to the SII, so the SII is in the rate's units. ``proportion``: value
    = count / denominator (population by default) with Wilson 95% limits, and the
    multiplier goes to the SII (100 for percentage points). A zero count has no log or
    logit, so it is a ``StatisticsError`` the caller can report as "SII unavailable".
    """
    if len(counts) != len(populations) or (
        denominators is not None and len(denominators) != len(counts)
    ):
        raise StatisticsError("counts, populations and denominators must have equal lengths")
    m = number(multiplier, "multiplier")
    if kind == "rate":
        if m == 0 or not math.isfinite(m):
            raise StatisticsError(f"a rate multiplier must be finite and non-zero, got {m!r}")
        rows = [
            _rate_row(q, c, p, abs(m))
            for q, (c, p) in enumerate(zip(counts, populations, strict=True), 1)
        ]
        vt, sii_multiplier = ValueType.RATE, math.copysign(1.0, m)
    elif kind == "proportion":
        dens = populations if denominators is None else denominators
        rows = [
            _proportion_row(q, c, p, n)
            for q, (c, p, n) in enumerate(zip(counts, populations, dens, strict=True), 1)
        ]
        vt, sii_multiplier = ValueType.PROPORTION, m
    else:
        raise StatisticsError(f"kind must be 'rate' or 'proportion', got {kind!r}")
    return sii(
        rows,
        value_type=vt,
        multiplier=sii_multiplier,
        levels=levels,
        repetitions=repetitions,
        seed=seed,
        rii=rii,
    )


def _positive(value: float, what: str) -> float:
    v = number(value, what)
    if not v > 0:
        raise StatisticsError(f"{what} must be > 0, got {value!r}")
    return v


def _zero_count(q: int) -> StatisticsError:
    return StatisticsError(
        f"quantile {q} has no events: a zero has no log or logit, so the SII needs a "
        "count of at least 1 in every quantile"
    )


def _rate_row(q: int, count: float, population: float, scale: float) -> SiiInput:
    pop = _positive(population, f"quantile {q}: population")
    o = number(count, f"quantile {q}: count")
    if o < 0:
        raise StatisticsError(f"quantile {q}: count must be >= 0, got {count!r}")
    if o == 0:
        raise _zero_count(q)
    lower, upper, _ = count_limits(o, 0.95)
    if lower is None:  # pragma: no cover - Byar at 95% is positive for every O >= 10
        raise StatisticsError(f"quantile {q}: no lower limit for a count of {o!r}")
    per = scale / pop
    return SiiInput(q, pop, o * per, lower=lower * per, upper=upper * per)


def _proportion_row(q: int, x: float, population: float, n: float) -> SiiInput:
    pop = _positive(population, f"quantile {q}: population")
    den = _positive(n, f"quantile {q}: denominator")
    events = number(x, f"quantile {q}: count")
    if not 0 <= events <= den:
        raise StatisticsError(f"quantile {q}: count {x!r} must be between 0 and {n!r}")
    if events == 0:
        raise _zero_count(q)
    if events == den:
        raise StatisticsError(
            f"quantile {q}: every one of {n!r} is an event; a proportion of 1 has no logit"
        )
    lower, upper = _wilson95(events, den)
    return SiiInput(q, pop, events / den, lower=lower, upper=upper)


def _wilson95(x: float, n: float) -> tuple[float, float]:
    """Wilson score 95% limits of x/n (stats-methods §3), inline so this module does not
    depend on the proportion module's API."""
    z2 = Z95 * Z95
    spread = Z95 * math.sqrt(z2 + 4 * x * (1 - x / n))
    denominator = 2 * (n + z2)
    return (2 * x + z2 - spread) / denominator, (2 * x + z2 + spread) / denominator
