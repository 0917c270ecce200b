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

Several breakdowns of the same events (``control_tables``). Each breakdown adds up to
the same total, and some cells are sums of others (IMD quintile 1 is deciles 1 and 2,
and both breakdowns' ``unknown`` is the same people), so a reader can combine tables: a
cell suppressed in one table may be published, or nearly pinned, by another. Tables are
first controlled one by one as above, and the total (one number, shared by every table)
is suppressed in all of them if any needed it. Then the result is *audited* the way a
reader would attack it: interval bounds from the rule (``*`` is at least 1 and possibly
anything, since a reader cannot tell primary from secondary suppression; a published
``r`` is within 2 of r and at least 8; ``0`` is 0), tightened through every identity
(``feasible``) until nothing changes. Every count of 1 to 7 must still have at least two
feasible values; while one has not, one more count is suppressed (the smallest other
non-zero cell of its table, else the total, else the smallest non-zero cell anywhere)
and the audit runs again. Suppressing everything leaves no finite upper bound, so this
ends. ``within`` adds a second measure every count is at most (a proportion's
denominator): its published counts are known, and protected, too.

Counts only: §5 leaves standardised rates, confidence intervals and model outputs
uncontrolled, but limits computed from a true count reveal it, so callers compute
limits from the *published* count (``ControlledCount.value``).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, TypeVar

__all__ = [
    "RULE",
    "SUPPRESSED",
    "TOTAL_REF",
    "CellRef",
    "Controlled",
    "ControlledCount",
    "ControlledTables",
    "Link",
    "control",
    "control_count",
    "control_tables",
    "controlled_rate",
    "feasible",
    "reader_bounds",
]

SUPPRESSED: Final = "*"
SMALLEST_SHOWN: Final = 8
"""Counts below this (and above 0) are suppressed: the rule's 1 to 7."""
ROUND_TO: Final = 5
RULE: Final = (
    "NHS England secondary-care disclosure control (HES/ECDS, 2018): counts of 1 to 7 "
    "shown as '*', other counts rounded to the nearest 5, 0 shown as 0; rates from the "
    "rounded counts, and suppressed where the count is. Totals are controlled too, and "
    "further counts are suppressed where combining published figures (a total less the "
    "other cells, across every breakdown) would reveal a count of 1 to 7."
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


CellRef = tuple[str, str]
"""(table, key) of one published count."""
TOTAL_REF: Final[CellRef] = ("total", "all")
"""The shared total of every table in ``control_tables``."""
Link = tuple[CellRef, tuple[CellRef, ...]]
"""An identity a reader knows: the first count is the sum of the others."""
Bounds = tuple[float, float]
"""(lowest, highest) feasible true count; the highest may be ``math.inf``."""
K = TypeVar("K", bound=Hashable)

_Var = tuple[str, str, str]
"""(side, table, key): side "n" is the measure being controlled, "d" the ``within`` one
and "s" the unpublished slack between them (``d = n + s``)."""
_MAX_SWEEPS: Final = 1000
"""Interval tightening settles in a few sweeps on breakdown tables; a cap keeps a
pathological input from spinning."""


@dataclass(frozen=True, slots=True)
class ControlledTables:
    """Several breakdowns of the same events, controlled together."""

    tables: Mapping[str, Controlled]
    """Each breakdown's cells; every one's ``total`` is ``total``."""
    total: ControlledCount

    def published(self) -> dict[CellRef, ControlledCount]:
        """Every published count by reference, the total as ``TOTAL_REF``."""
        out = {(name, k): c for name, t in self.tables.items() for k, c in t.cells.items()}
        out[TOTAL_REF] = self.total
        return out


def reader_bounds(c: ControlledCount) -> Bounds:
    """What a reader who knows the rule can say about the true count behind ``c``: ``*``
    is at least 1 (a secondary cell may be any size), ``0`` is 0, a published r is
    within 2 of r and at least 8 (smaller counts are never published)."""
    if c.value is None:
        return 1, math.inf
    if c.value == 0:
        return 0, 0
    return max(c.value - 2, SMALLEST_SHOWN), c.value + 2


def feasible(
    bounds: Mapping[K, Bounds], equations: Sequence[tuple[K, tuple[K, ...]]]
) -> dict[K, Bounds]:
    """Tighten ``bounds`` through ``whole = sum(parts)`` identities until nothing changes:
    each whole lies within its parts' summed bounds, and each part within the whole's
    bounds less the other parts'. Sound for the true counts, whatever they are."""
    lo = {v: b[0] for v, b in bounds.items()}
    hi = {v: b[1] for v, b in bounds.items()}
    for _ in range(_MAX_SWEEPS):
        changed = False
        for whole, parts in equations:
            los = [lo[p] for p in parts]
            his = [hi[p] for p in parts]
            lo_sum = sum(los)
            infinite = sum(1 for h in his if h == math.inf)
            finite_hi = sum(h for h in his if h != math.inf)
            if lo_sum > lo[whole]:
                lo[whole], changed = lo_sum, True
            if not infinite and finite_hi < hi[whole]:
                hi[whole], changed = finite_hi, True
            for p, p_lo, p_hi in zip(parts, los, his, strict=True):
                own_infinite = p_hi == math.inf
                others_hi = (
                    math.inf
                    if infinite - own_infinite
                    else finite_hi - (0 if own_infinite else p_hi)
                )
                if lo[whole] - others_hi > lo[p]:
                    lo[p], changed = lo[whole] - others_hi, True
                if hi[whole] - (lo_sum - p_lo) < hi[p]:
                    hi[p], changed = hi[whole] - (lo_sum - p_lo), True
        if not changed:
            break
    return {v: (lo[v], hi[v]) for v in lo}


def control_tables(
    tables: Mapping[str, Mapping[str, int]],
    total: int,
    links: Sequence[Link] = (),
    within: ControlledTables | None = None,
) -> ControlledTables:
    """Control breakdowns of the same ``total`` events together (module docstring).

    Each table's cells add up to ``total`` (every group, ``unknown`` included); ``links``
    are identities between cells of different tables. ``within`` is an already controlled
    measure (same tables and links) every count of this one is at most.
    """
    first = {name: control(cells, total) for name, cells in tables.items()}
    shown: dict[CellRef, ControlledCount] = {
        (name, k): c for name, t in first.items() for k, c in t.cells.items()
    }
    shown[TOTAL_REF] = control_count(total)
    if not shown[TOTAL_REF].suppressed and any(
        t.total is not None and t.total.suppressed for t in first.values()
    ):
        shown[TOTAL_REF] = _STAR_SECONDARY
    truth = {(name, k): n for name, cells in tables.items() for k, n in cells.items()}
    truth[TOTAL_REF] = total
    while (pinned := _first_pinned(shown, tables, links, within)) is not None:
        hide = _next_to_hide(pinned, shown, truth, tables)
        if hide is None:  # cannot happen: with everything hidden nothing is pinned
            break
        shown[hide] = _STAR_SECONDARY
    out_total = shown[TOTAL_REF]
    return ControlledTables(
        {
            name: Controlled({k: shown[(name, k)] for k in cells}, out_total)
            for name, cells in tables.items()
        },
        out_total,
    )


def _first_pinned(
    shown: Mapping[CellRef, ControlledCount],
    tables: Mapping[str, Mapping[str, int]],
    links: Sequence[Link],
    within: ControlledTables | None,
) -> _Var | None:
    """The first primary-suppressed count (1 to 7) a reader can pin to one value."""
    sides: list[tuple[str, Mapping[CellRef, ControlledCount]]] = [("n", shown)]
    if within is not None:
        sides.append(("d", within.published()))
    bounds: dict[_Var, Bounds] = {}
    equations: list[tuple[_Var, tuple[_Var, ...]]] = []
    for side, published in sides:
        bounds.update({(side, *ref): reader_bounds(c) for ref, c in published.items()})
        for name, cells in tables.items():
            equations.append(((side, *TOTAL_REF), tuple((side, name, k) for k in cells)))
        for whole, parts in links:
            equations.append(((side, *whole), tuple((side, *p) for p in parts)))
    if within is not None:
        for ref in shown:
            bounds[("s", *ref)] = (0, math.inf)
            equations.append((("d", *ref), (("n", *ref), ("s", *ref))))
    found = feasible(bounds, equations)
    for side, published in sides:
        for ref, c in published.items():
            lo, hi = found[(side, *ref)]
            if c.suppressed and not c.secondary and lo == hi:
                return (side, *ref)
    return None


def _next_to_hide(
    pinned: _Var,
    shown: Mapping[CellRef, ControlledCount],
    truth: Mapping[CellRef, int],
    tables: Mapping[str, Mapping[str, int]],
) -> CellRef | None:
    """The count to suppress next: the smallest other non-zero cell of the pinned count's
    table (ties: the lowest key), else the total, else the smallest non-zero cell of any
    table (in table order)."""

    def candidates(names: Sequence[str]) -> list[tuple[int, int, str, str]]:
        return [
            (truth[(name, k)], i, k, name)
            for i, name in enumerate(names)
            for k in tables[name]
            if not shown[(name, k)].suppressed and truth[(name, k)] > 0
        ]

    table = pinned[1]
    own = candidates([table]) if table in tables else []
    if own:
        _, _, key, name = min(own)
        return name, key
    if not shown[TOTAL_REF].suppressed:
        return TOTAL_REF
    anywhere = candidates(list(tables))
    if anywhere:
        _, _, key, name = min(anywhere)
        return name, key
    return None
