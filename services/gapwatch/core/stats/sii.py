"""Slope and relative index of inequality: PHE's ``phe_sii`` (stats-methods §7).

The SII is the fitted difference in a value between the least deprived end (rank 1) and
the most deprived end (rank 0) of a population ranked by deprivation; the RII is the same
gradient as a ratio. Point estimates are closed-form weighted least squares (§7.4);
confidence limits are Monte Carlo order statistics (§7.5), so they are a deterministic
function of (inputs, seed, repetitions, levels) and match PHE within simulation noise.

This module holds the public types and the calls, ``sii`` and ``sii_by_group``, which
wire the parts together: ``sii_scale`` (``ValueType``, the log/logit scale),
``sii_validation`` (the §7.2 checks), ``sii_fit`` (the fit and the simulation) and,
layered on top, ``sii_counts`` (``sii_from_counts``, the SII of event counts).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Generic, TypeVar

import numpy as np

from gapwatch.core.errors import StatisticsError
from gapwatch.core.stats.confidence import DEFAULT_LEVELS, Interval, normalise_levels
from gapwatch.core.stats.sii_fit import point, prepare, simulate
from gapwatch.core.stats.sii_scale import ValueType
from gapwatch.core.stats.sii_validation import (
    Options,
    check_distinct,
    check_row,
    number,
    options,
    quantile_set,
    uses_se,
)

__all__ = [
    "DEFAULT_REPETITIONS",
    "DEFAULT_SEED",
    "GroupedSii",
    "SiiInput",
    "SiiLimits",
    "SiiResult",
    "sii",
    "sii_by_group",
]

K = TypeVar("K", bound=Hashable)

DEFAULT_REPETITIONS: Final = 100_000
"""PHE's default; at this size the limits sit within ~1% of the CI width of PHE's (§7.7)."""
DEFAULT_SEED: Final = 20130101
"""Any fixed seed makes a published SII reproducible; this one is only a constant."""
STABLE_QUANTILES: Final = 10
"""PHE warns above this: small per-quantile counts make the slope noisy."""

_INDICATOR_TYPE: Final = {0: "normal", 1: "rate", 2: "proportion"}
_TRANSFORM_NAME: Final = {0: "none", 1: "log", 2: "logit"}


@dataclass(frozen=True, slots=True)
class SiiInput:
    """One quantile's row: order (1 = most deprived), population, value, and either an
    SE on the transformed scale (log for rates, logit for proportions) or 95% limits.
    ``None`` means missing, which the validation rejects with a message."""

    quantile: int
    population: float | None
    value: float | None
    se: float | None = None
    lower: float | None = None
    upper: float | None = None

    @classmethod
    def from_count(
        cls,
        quantile: int,
        population: float,
        x: float | None,
        *,
        se: float | None = None,
        lower: float | None = None,
        upper: float | None = None,
    ) -> SiiInput:
        """A proportion given as ``x`` events in ``population`` (PHE's ``x`` argument,
        proportions only): value = x / population. PHE rejects x <= 0 here, since a
        zero proportion has no logit."""
        number(population, f"quantile {quantile}: population")
        if not population > 0:
            raise StatisticsError(f"quantile {quantile}: population must be > 0")
        if x is None or not number(x, f"quantile {quantile}: x") > 0:
            raise StatisticsError(f"quantile {quantile}: the count x must be > 0, got {x!r}")
        return cls(quantile, population, x / population, se, lower, upper)


@dataclass(frozen=True, slots=True)
class SiiLimits:
    """Limits at one level; the MADs (mean absolute deviation of 9 more batches' limits
    from the reported ones) are present only when reliability was requested."""

    level: float
    sii: Interval
    rii: Interval | None
    sii_mad: float | None = None
    rii_mad: float | None = None


@dataclass(frozen=True, slots=True)
class SiiResult:
    """SII, RII (None if not requested or undefined) and intercept with their limits.

    ``intercept`` follows PHE: beta0 unscaled without a transform, g^-1(beta0)*|m| with.
    ``indicator_type``, ``transform``, ``ci_confidence`` and ``ci_method`` are PHE's
    metadata text; ``warnings`` carries what PHE only prints.
    """

    sii: float
    rii: float | None
    intercept: float
    limits: tuple[SiiLimits, ...]
    indicator_type: str
    multiplier: float
    transform: str
    ci_confidence: str
    ci_method: str
    warnings: tuple[str, ...] = ()

    def at(self, level: float) -> SiiLimits:
        """The limits at ``level`` (which must have been requested)."""
        wanted = normalise_levels(level)[0]
        for limits in self.limits:
            if abs(limits.level - wanted) < 1e-12:
                return limits
        raise KeyError(f"no limits at confidence {level!r}")


@dataclass(frozen=True, slots=True)
class GroupedSii(Generic[K]):
    """One result per complete group; groups lacking a quantile are listed in ``dropped``."""

    results: Mapping[K, SiiResult]
    dropped: tuple[K, ...]
    warnings: tuple[str, ...]


def _maybe(x: np.float64 | float) -> float | None:
    return None if math.isnan(x) else float(x)


def _estimate(rows: Sequence[SiiInput], opts: Options, use_se: bool) -> SiiResult:
    """Point estimates, limits and metadata for one complete group."""
    fit = prepare(rows, opts, use_se)
    sii_value, rii_value, intercept = point(fit, opts)
    first, mads = simulate(fit, opts)
    limits = tuple(
        SiiLimits(
            level,
            Interval(level, _maybe(first[i, 0]), _maybe(first[i, 1])),
            Interval(level, _maybe(first[i, 2]), _maybe(first[i, 3])) if opts.rii else None,
            None if mads is None else float(mads[i, 0]),
            None if mads is None or not opts.rii else float(mads[i, 1]),
        )
        for i, level in enumerate(opts.levels)
    )
    return SiiResult(
        sii=sii_value,
        rii=rii_value if opts.rii else None,
        intercept=intercept,
        limits=limits,
        indicator_type=_INDICATOR_TYPE[opts.value_type],
        multiplier=opts.multiplier,
        transform=_TRANSFORM_NAME[opts.value_type] if opts.transform else "none",
        ci_confidence=", ".join(f"{level * 100:g}%" for level in opts.levels),
        ci_method=f"simulation {opts.repetitions} reps",
        warnings=_warnings(len(rows), rii_value, opts),
    )


def _warnings(n_quantiles: int, rii_value: float | None, opts: Options) -> tuple[str, ...]:
    """What PHE only prints, plus the cases where we follow PHE into odd territory."""
    out = []
    if n_quantiles > STABLE_QUANTILES:
        out.append(
            f"{n_quantiles} quantiles: small values can make the SII unstable with more "
            f"than {STABLE_QUANTILES}"
        )
    if opts.rii and rii_value is None:
        out.append("the fitted value at rank 0 is 0, so the RII is undefined")
    if opts.transform and opts.value_type is ValueType.RATE and 0 < opts.multiplier < 1:
        out.append(
            "a multiplier between 0 and 1 with a log transform triggers phe_sii's limit "
            "swap (m < 1), so the limits come out reversed, as PHE's would"
        )
    return tuple(out)


def sii(
    rows: Sequence[SiiInput],
    *,
    value_type: ValueType | int | str = ValueType.OTHER,
    transform: bool = False,
    multiplier: float = 1.0,
    levels: float | Iterable[float] = DEFAULT_LEVELS,
    repetitions: int = DEFAULT_REPETITIONS,
    seed: int = DEFAULT_SEED,
    rii: bool = True,
    reliability: bool = False,
) -> SiiResult:
    """SII and RII of one set of quantiles (stats-methods §7), e.g. IMD deciles.

    ``multiplier`` scales the SII (100 for a percentage; negative flips the direction,
    and then the RII is inverted). ``transform=True`` fits on the log/logit scale and
    needs CLs. Limits come from ``repetitions`` simulated refits at each of ``levels``;
    ``reliability`` draws 9 more batches to report how much the limits move (MAD).
    """
    grouped = sii_by_group(
        {0: rows},
        value_type=value_type,
        transform=transform,
        multiplier=multiplier,
        levels=levels,
        repetitions=repetitions,
        seed=seed,
        rii=rii,
        reliability=reliability,
    )
    return grouped.results[0]


def sii_by_group(
    groups: Mapping[K, Sequence[SiiInput]],
    *,
    value_type: ValueType | int | str = ValueType.OTHER,
    transform: bool = False,
    multiplier: float = 1.0,
    levels: float | Iterable[float] = DEFAULT_LEVELS,
    repetitions: int = DEFAULT_REPETITIONS,
    seed: int = DEFAULT_SEED,
    rii: bool = True,
    reliability: bool = False,
) -> GroupedSii[K]:
    """PHE's grouped call: one SII per group over the quantile set of the whole input.

    A group lacking any of those quantiles is dropped with a warning, as PHE does (§7.3).
    Every group is simulated from the same ``seed``, so a group's limits depend on its
    own rows only (and differences between groups share their Monte Carlo noise).
    """
    opts = options(value_type, transform, multiplier, levels, repetitions, seed, rii, reliability)
    use_se = uses_se(row for rows in groups.values() for row in rows)
    if use_se and opts.transform:
        raise StatisticsError("transform needs 95% confidence limits, not standard errors")
    for rows in groups.values():
        for row in rows:
            check_row(row, opts.value_type, use_se)
        check_distinct(rows)
    quantiles = quantile_set(groups.values())
    results: dict[K, SiiResult] = {}
    dropped: list[K] = []
    for key, rows in groups.items():
        if {row.quantile for row in rows} == quantiles:
            results[key] = _estimate(rows, opts, use_se)
        else:
            dropped.append(key)
    warnings: tuple[str, ...] = ()
    if dropped:
        warnings = (
            f"{len(dropped)} group(s) lacking some of the {len(quantiles)} quantiles were "
            "removed due to incomplete or invalid data",
        )
    return GroupedSii(results, tuple(dropped), warnings)
