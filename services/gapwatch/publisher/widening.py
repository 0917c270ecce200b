"""The ``widening_gap`` scenario: one ICB's most deprived quintile gets steadily worse.

From a chosen UTC day, the rate of the chosen activities (by default ED attendances and
emergency admissions) among residents of one ICB's national IMD quintile 1 LSOAs climbs
by ``per_day`` x its stable rate each day, capped at ``max_factor`` x. Everybody else is
untouched: the scenario adds the extra quintile 1 patients on top of the stable stream
rather than re-weighting the ICB's LSOA draw, which would take them from quintiles 2-5
and make those look better than they are. So the Q1 - Q5 gap grows by exactly Q1's
growth, the alert the demo should raise.

The factor is constant within a UTC day and steps up at midnight UTC, because the
alerter charts one gap value per closed UTC day; ``expected_q1_factor`` tells a test
which days are widened and by how much.

Sizing (``make demo``, 2,000,000 events over 67 days, about 30,000 a day): Greater
Manchester (QOP) sees ~297 ED arrivals a day from quintile 1 and ~56 from quintile 5
(emergency admissions ~68 and ~12). Over census residents the day-to-day sd of the
Q1 - Q5 gap in ED attendance rate is ~840 per 100,000/year against a Q1 rate of ~9,600,
so each day at ``per_day = 0.15`` moves the gap by ~1.7 sd: the 3rd widened day is ~5 sd
above the stable mean and the 7th ~12 sd (XmR's upper limit is ~3 sd above it), and in a
simulation of 2,000 such fortnights the last closed day was above the limit every time.
Emergency admissions, with a quarter of the volume and a weekday pattern, move ~0.8 sd a
day (~5.6 sd by day 7; last day above the limit in ~98%). A strict 7-point rising trend
is likelier than not to be broken by noise (~35% of runs for ED), so the points beyond
the limit are the trigger to rely on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Final

from gapwatch.core.errors import ConfigError
from gapwatch.core.windows import DAY_MS

__all__ = [
    "DEFAULT_ACTIVITIES",
    "DEFAULT_PER_DAY",
    "DEFAULT_WIDEN_FROM",
    "MAX_FACTOR",
    "Widening",
    "day_start_ms",
    "expected_q1_factor",
    "parse_widen_from",
]

DEFAULT_ACTIVITIES: Final = frozenset({"ed", "emergency"})
"""Activity classes (``scenario.ACTIVITY_CLASSES``) that widen: ED attendances (arrivals
and departures) and emergency admissions."""
DEFAULT_PER_DAY: Final = 0.15
"""Q1's rate grows by 15% of its stable value a day: at the demo's volume the 3rd widened
day is already ~5 sd above the stable mean of the ED gap (see the module docstring)."""
DEFAULT_WIDEN_FROM: Final = "-7d"
"""The climb starts 7 UTC days before the end: 7 closed widened days by the next hour."""
MAX_FACTOR: Final = 3.0
"""Q1's rate at most triples (day 14 at the default), so a live stream left running for
weeks stays a plausible, if alarming, trend."""

_RELATIVE: Final = re.compile(r"-(\d{1,4})d")


@dataclass(frozen=True, slots=True)
class Widening:
    """Which ICB, which activities, from when and how fast."""

    icb: str
    """ICB ODS code (e.g. ``QOP``) whose IMD quintile 1 residents are affected."""
    start_ms: int
    """00:00 UTC (epoch ms) of the first widened day."""
    per_day: float = DEFAULT_PER_DAY
    activities: frozenset[str] = DEFAULT_ACTIVITIES
    max_factor: float = MAX_FACTOR

    def __post_init__(self) -> None:
        if not self.icb:
            raise ConfigError("the widening needs an ICB ODS code, e.g. QOP")
        if self.start_ms % DAY_MS:
            raise ConfigError("the widening starts at 00:00 UTC (start_ms a whole day)")
        if not 0.0 < self.per_day <= 2.0:
            raise ConfigError(f"widen per day must be in (0, 2], got {self.per_day}")
        if not self.max_factor >= 1.0:
            raise ConfigError(f"the widening's maximum factor must be >= 1, got {self.max_factor}")
        if not self.activities:
            raise ConfigError("the widening needs at least one activity class")

    def factor(self, occurred_at_ms: int) -> float:
        """Q1's rate relative to the stable scenario at ``occurred_at_ms`` (epoch ms):
        1 before the start day, ``1 + per_day x k`` on the k-th widened day (k = 1 on
        the start day), at most ``max_factor``."""
        if occurred_at_ms < self.start_ms:
            return 1.0
        k = (occurred_at_ms - self.start_ms) // DAY_MS + 1
        return min(1.0 + self.per_day * k, self.max_factor)


def expected_q1_factor(day_ms: int, widening: Widening | None) -> float:
    """How much the scenario multiplies the widened ICB's quintile 1 rate on the UTC day
    containing ``day_ms`` (epoch ms): 1.0 on a stable day or with no widening.

    For tests of the alerter: a closed day with a factor > 1 is one the widening made,
    so with enough volume it should be a special cause in the worsening direction.
    """
    return 1.0 if widening is None else widening.factor(day_ms)


def day_start_ms(ms: int) -> int:
    """00:00 UTC of the day containing ``ms`` (epoch ms)."""
    return ms - ms % DAY_MS


def parse_widen_from(text: str, end_ms: int) -> int:
    """``-Nd`` (N UTC days before the day of ``end_ms``, the backfill's end or now) or a
    UTC date ``YYYY-MM-DD`` -> 00:00 UTC of the first widened day, in epoch ms."""
    text = text.strip()
    relative = _RELATIVE.fullmatch(text)
    if relative:
        return day_start_ms(end_ms) - int(relative.group(1)) * DAY_MS
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise ConfigError(
            f"--widen-from {text!r}: expected -Nd (N days before the end of the backfill, "
            "or now when live), e.g. -7d, or a UTC date YYYY-MM-DD, e.g. 2026-11-20"
        ) from None
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()) * 1000
