"""Confidence levels, normal quantiles and the estimate types every statistic returns.

A level is accepted as a fraction in [0.9, 1] or a percentage in [90, 100] (PHE's rule);
anything else is a ``StatisticsError``. Every statistic takes a tuple of levels and
returns one ``Interval`` per level, so 95% and 99.8% limits come from one call.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

from scipy.special import ndtri

from gapwatch.core.errors import StatisticsError

__all__ = [
    "DEFAULT_LEVELS",
    "Estimate",
    "Interval",
    "level_label",
    "no_limits",
    "normalise_level",
    "normalise_levels",
    "z_two_sided",
]

DEFAULT_LEVELS: tuple[float, ...] = (0.95,)


def normalise_level(level: float) -> float:
    """0.95 or 95 -> 0.95; outside [0.9, 1] and [90, 100] is an error."""
    if 0.9 <= level <= 1:
        return float(level)
    if 90 <= level <= 100:
        return level / 100
    raise StatisticsError(f"confidence level {level!r} must be between 0.9 and 1 (or 90 and 100)")


def normalise_levels(levels: float | Iterable[float]) -> tuple[float, ...]:
    """One level or several, normalised, duplicates removed, order kept."""
    raw = (levels,) if isinstance(levels, int | float) else tuple(levels)
    if not raw:
        raise StatisticsError("at least one confidence level is needed")
    return tuple(dict.fromkeys(normalise_level(x) for x in raw))


@lru_cache(maxsize=64)
def z_two_sided(level: float) -> float:
    """Two-sided standard normal quantile: Phi^-1((1 + level) / 2); z(0.95) = 1.95996..."""
    return float(ndtri((1 + level) / 2))


def level_label(level: float) -> str:
    """PHE's column suffix for a level: 0.95 -> "95_0", 0.998 -> "99_8"."""
    return f"{level * 100:.1f}".replace(".", "_")


@dataclass(frozen=True, slots=True)
class Interval:
    """Confidence limits at one level; a limit is None where the method gives none."""

    level: float
    lower: float | None
    upper: float | None


@dataclass(frozen=True, slots=True)
class Estimate:
    """A statistic's value with its limits at each requested level.

    ``value`` is None when the statistic is not defined or is suppressed (for example a
    DSR from fewer than 10 events); ``statistic`` and ``method`` are PHE's wording.
    """

    value: float | None
    intervals: tuple[Interval, ...]
    statistic: str
    method: str

    def at(self, level: float) -> Interval:
        """The interval at ``level`` (which must have been requested)."""
        found = self.find(level)
        if found is None:
            raise KeyError(f"no interval at confidence {level!r}")
        return found

    def find(self, level: float) -> Interval | None:
        """The interval at ``level``, or None when it was not requested."""
        wanted = normalise_level(level)
        for interval in self.intervals:
            if abs(interval.level - wanted) < 1e-12:
                return interval
        return None


def no_limits(levels: Iterable[float]) -> tuple[Interval, ...]:
    """Missing limits at each level (a statistic that is missing or suppressed)."""
    return tuple(Interval(level, None, None) for level in levels)
