"""Statistical disclosure control for anything published below national level.

The rule is NHS England's secondary-care rule (HES and ECDS outputs since September
2018; docs/nhs-inequalities.md §5):

- a count of 0 is shown as ``0`` (§5 keeps zeros; they are marked **[check]** there);
- a count of 1 to 7 is shown as ``*`` (suppressed);
- every other count is rounded to the nearest 5 (8 and 9 become 10; an integer is never
  half-way between two multiples of 5, so there is no tie to break);
- a rate or percentage is computed from the rounded count (§5: "percentages are
  calculated from the rounded numbers"), and is suppressed when its count is;
- a total is controlled the same way from its own true value (§5: "applied ... to
  totals too"), never summed from the rounded cells.

Differencing. §5 relies on rounding the total to stop ``total - sum(others)``
recovering a suppressed cell, and the NHS dropped its older secondary suppression.
Rounding alone is not enough once an attacker uses the rounding bounds: cells of
1, 8 and 8 with a total of 17 publish as ``*``, ``10``, ``10`` and ``15``, and since the
true total is at most 17 and each ``10`` is at least 8, the ``*`` must be 1. So
``control`` also applies secondary suppression whenever it publishes a total next to a
suppressed cell: the smallest other non-zero cell (ties: the lowest key) is suppressed
as well, and when there is no such cell the total is suppressed instead. With at least
one hidden cell of 8 or more, ``total - sum(others)`` is that cell plus the small one,
and the bounds can no longer pin the small one below 8 (the unit tests check this with
the rounding bounds, by brute force over random sets). A secondarily suppressed value
is shown as ``*`` like any other, so a reader cannot tell which cell hides what.

Counts only: §5 leaves standardised rates, confidence intervals and model outputs
uncontrolled, but limits computed from a true count reveal it, so callers compute
limits from the *published* count (``ControlledCount.value``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

__all__ = [
    "RULE",
    "SUPPRESSED",
    "Controlled",
    "ControlledCount",
    "control",
    "control_count",
    "controlled_rate",
]

SUPPRESSED: Final = "*"
SMALLEST_SHOWN: Final = 8
"""Counts below this (and above 0) are suppressed: the rule's 1 to 7."""
ROUND_TO: Final = 5
RULE: Final = (
    "NHS England secondary-care disclosure control (HES/ECDS, 2018): counts of 1 to 7 "
    "shown as '*', other counts rounded to the nearest 5, 0 shown as 0; rates from the "
    "rounded counts, and suppressed where the count is."
)


@dataclass(frozen=True, slots=True)
class ControlledCount:
    """One count as it may be published."""

    value: int | None
    """The published count: a multiple of 5 (or 0), None when suppressed."""
    display: str
    """``value`` as text, or ``"*"`` when suppressed."""
    secondary: bool = False
    """Suppressed only to protect another cell (or, for a total, the cells)."""

    @property
    def suppressed(self) -> bool:
        return self.value is None


_STAR = ControlledCount(None, SUPPRESSED)
_STAR_SECONDARY = ControlledCount(None, SUPPRESSED, secondary=True)


def control_count(n: int) -> ControlledCount:
    """The primary rule for one count: 0 stays 0, 1-7 suppressed, else nearest 5."""
    if n < 0:
        raise ValueError(f"a count must be >= 0, got {n}")
    if n == 0:
        return ControlledCount(0, "0")
    if n < SMALLEST_SHOWN:
        return _STAR
    rounded = (n + ROUND_TO // 2) // ROUND_TO * ROUND_TO
    return ControlledCount(rounded, str(rounded))


@dataclass(frozen=True, slots=True)
class Controlled:
    """A set of cells (and optionally their total) after disclosure control."""

    cells: Mapping[str, ControlledCount]
    total: ControlledCount | None

    @property
    def suppressed(self) -> tuple[str, ...]:
        """Keys of the suppressed cells, primary and secondary."""
        return tuple(k for k, c in self.cells.items() if c.suppressed)


def control(cells: Mapping[str, int], total: int | None = None) -> Controlled:
    """Control a set of cells that add up to ``total`` (None: no total is published).

    ``total`` is the true total, which may exceed the sum of the cells (cells left out
    of the set, e.g. an ``unknown`` group that is not shown); it is controlled from its
    own value. Secondary suppression is as the module docstring says.
    """
    out = {key: control_count(n) for key, n in cells.items()}
    controlled_total = None if total is None else control_count(total)
    if controlled_total is None or controlled_total.suppressed:
        return Controlled(out, controlled_total)
    if not any(c.suppressed for c in out.values()):
        return Controlled(out, controlled_total)
    shown = [(cells[k], k) for k, c in out.items() if not c.suppressed and cells[k] > 0]
    if shown:
        _, smallest = min(shown)
        out[smallest] = _STAR_SECONDARY
        return Controlled(out, controlled_total)
    return Controlled(out, _STAR_SECONDARY)


def controlled_rate(
    count: ControlledCount, denominator: float | None, multiplier: float = 1.0
) -> float | None:
    """``published count / denominator * multiplier``; None when the count is suppressed
    or there is no (positive) denominator."""
    if count.value is None or denominator is None or not denominator > 0:
        return None
    return count.value / denominator * multiplier
