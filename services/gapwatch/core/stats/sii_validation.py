"""Input checks for the SII (stats-methods §7.2): the call's options and every row.

Whatever PHE's ``phe_sii`` rejects is rejected here with a message before any fitting
starts, plus values the log or logit cannot take, which PHE lets through to NaN or
infinite limits. Rows are read through ``SiiRow``, a protocol that ``sii.SiiInput``
satisfies, so this module sits below ``sii`` without an import cycle.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final, Protocol

from gapwatch.core.errors import StatisticsError
from gapwatch.core.stats.confidence import normalise_levels
from gapwatch.core.stats.sii_scale import ValueType

__all__ = [
    "MAX_QUANTILES",
    "MIN_QUANTILES",
    "MIN_REPETITIONS",
    "Options",
    "SiiRow",
    "check_distinct",
    "check_row",
    "number",
    "options",
    "quantile_set",
    "uses_se",
]

MIN_REPETITIONS: Final = 1_000
MIN_QUANTILES: Final = 5
MAX_QUANTILES: Final = 100


class SiiRow(Protocol):
    """The fields of one quantile's row that the checks and the fit read; ``SiiInput``
    documents them."""

    @property
    def quantile(self) -> int: ...
    @property
    def population(self) -> float | None: ...
    @property
    def value(self) -> float | None: ...
    @property
    def se(self) -> float | None: ...
    @property
    def lower(self) -> float | None: ...
    @property
    def upper(self) -> float | None: ...


@dataclass(frozen=True, slots=True)
class Options:
    """One call's options, checked; what the fit and the simulation read."""

    value_type: ValueType
    transform: bool
    multiplier: float
    levels: tuple[float, ...]
    positions: tuple[tuple[int, int], ...]  # 0-based (lo, hi) per level
    repetitions: int
    seed: int
    rii: bool
    reliability: bool


def number(value: object, what: str) -> float:
    """A real number as float; text, bools and other objects are PHE's non-numeric error."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise StatisticsError(f"{what} must be a number, got {value!r}")
    return float(value)


def _value_type(raw: ValueType | int | str) -> ValueType:
    if isinstance(raw, str):
        names = {"other": 0, "normal": 0, "rate": 1, "proportion": 2}
        raw = names.get(raw.lower(), -1)
    if isinstance(raw, bool) or raw not in (0, 1, 2):
        raise StatisticsError(
            f"value_type must be 0 (other), 1 (rate) or 2 (proportion), got {raw!r}"
        )
    return ValueType(raw)


def _positions(level: float, repetitions: int) -> tuple[int, int]:
    """0-based order-statistic indices: PHE's 1-based round(R(1 -/+ c)/2), half-to-even
    like R's round (Python's round does the same)."""
    k_lo = round(repetitions * (1 - level) / 2)
    k_hi = round(repetitions * (1 + level) / 2)
    if k_lo < 1:
        raise StatisticsError(
            f"{repetitions} repetitions are too few for {level:.4g} confidence: the lower "
            "limit's position rounds to 0"
        )
    return k_lo - 1, k_hi - 1


def options(
    value_type: ValueType | int | str,
    transform: bool,
    multiplier: float,
    levels: float | Iterable[float],
    repetitions: int,
    seed: int,
    rii: bool,
    reliability: bool,
) -> Options:
    """The call's options, checked, with each level's order-statistic positions."""
    vt = _value_type(value_type)
    if isinstance(repetitions, bool) or not isinstance(repetitions, int):
        raise StatisticsError(f"repetitions must be an integer, got {repetitions!r}")
    if repetitions < MIN_REPETITIONS:
        raise StatisticsError(f"repetitions must be {MIN_REPETITIONS} or more, got {repetitions}")
    m = number(multiplier, "multiplier")
    if not math.isfinite(m):
        raise StatisticsError(f"multiplier must be finite, got {multiplier!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise StatisticsError(f"seed must be a non-negative integer, got {seed!r}")
    if transform and vt is ValueType.OTHER:
        raise StatisticsError("transform needs value_type rate (1) or proportion (2)")
    lv = normalise_levels(levels)
    positions = tuple(_positions(level, repetitions) for level in lv)
    return Options(vt, transform, m, lv, positions, repetitions, seed, rii, reliability)


def uses_se(rows: Iterable[SiiRow]) -> bool:
    """A call uses SEs if any row has one (then every row needs one); otherwise CLs. This
    mirrors PHE, where the caller passes either ``se`` or the two limits to the call."""
    return any(row.se is not None for row in rows)


def check_row(row: SiiRow, vt: ValueType, use_se: bool) -> None:
    """Reject a row PHE rejects (§7.2), plus values the log or logit cannot take, which
    PHE lets through to NaN or infinite limits."""
    q = row.quantile
    if isinstance(q, bool) or not isinstance(q, numbers.Integral):
        raise StatisticsError(f"quantile must be an integer order, got {q!r}")
    pop = row.population
    if pop is None or not 0 < number(pop, f"quantile {q}: population") < math.inf:
        raise StatisticsError(f"quantile {q}: population must be > 0, got {pop!r}")
    if row.value is None:
        raise StatisticsError(f"quantile {q}: value is missing")
    _check_scale(vt, q, "value", number(row.value, f"quantile {q}: value"))
    if use_se:
        if row.se is None or not 0 <= number(row.se, f"quantile {q}: se") < math.inf:
            raise StatisticsError(f"quantile {q}: standard error must be >= 0, got {row.se!r}")
    else:
        _check_limits(row, vt)


def _check_limits(row: SiiRow, vt: ValueType) -> None:
    q = row.quantile
    if row.lower is None or row.upper is None:
        raise StatisticsError(f"quantile {q}: lower or upper confidence limit is missing")
    lower = number(row.lower, f"quantile {q}: lower limit")
    upper = number(row.upper, f"quantile {q}: upper limit")
    _check_scale(vt, q, "lower limit", lower)
    _check_scale(vt, q, "upper limit", upper)
    if not lower <= upper:
        raise StatisticsError(f"quantile {q}: upper limit {upper!r} is below lower {lower!r}")


def _check_scale(vt: ValueType, q: int, what: str, v: float) -> None:
    if not math.isfinite(v):
        raise StatisticsError(f"quantile {q}: {what} must be finite, got {v!r}")
    if vt is ValueType.PROPORTION:
        if not 0 <= v <= 1:
            raise StatisticsError(f"quantile {q}: proportion {what} {v!r} is not in [0, 1]")
        if v in (0, 1):
            raise StatisticsError(f"quantile {q}: proportion {what} of {v!r} has no logit")
    if vt is ValueType.RATE and v <= 0:
        raise StatisticsError(f"quantile {q}: rate {what} {v!r} must be > 0 to take its log")


def quantile_set(groups: Iterable[Sequence[SiiRow]]) -> frozenset[int]:
    """The distinct quantiles over the whole input (every group's rows), not per group
    (§7.3)."""
    quantiles = frozenset(row.quantile for rows in groups for row in rows)
    if not MIN_QUANTILES <= len(quantiles) <= MAX_QUANTILES:
        raise StatisticsError(
            f"the number of quantiles must be between {MIN_QUANTILES} and {MAX_QUANTILES}, "
            f"got {len(quantiles)}"
        )
    return quantiles


def check_distinct(rows: Sequence[SiiRow]) -> None:
    """No quantile twice within one group."""
    seen: set[int] = set()
    for row in rows:
        if row.quantile in seen:
            raise StatisticsError(f"quantile {row.quantile} appears twice in one group")
        seen.add(row.quantile)
