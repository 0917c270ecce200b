"""When backfilled events happen: the local-time daily and weekly pattern of each type.

A backfill spreads ``count`` events over a period so the dashboard's history looks like
a hospital's: ED arrivals peak late morning and never stop, clinics keep office hours
and mostly close at weekends, departures and admissions lag arrivals. The period is cut
into hourly slots, each given its share of the events and its own mix of types; the
overall mix is kept. No randomness here: ``Scenario.backfill`` draws the times within
each slot, so the seeded draw order stays in one place.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from gapwatch.core.errors import ConfigError
from gapwatch.core.windows import DAY_MS, HOUR_MS
from gapwatch.publisher.mix import EVENT_TYPES

__all__ = ["BackfillSlot", "backfill_slots"]

logger = logging.getLogger(__name__)

# Local-time activity by hour 00..23, for backfill timestamps (urgent = ED-like,
# planned = clinic hours). Relative weights; planned activity at weekends is a tenth.
# fmt: off
_URGENT_BY_HOUR: Final = (2.6, 2.1, 1.8, 1.5, 1.4, 1.5, 2.0, 3.0, 4.6, 5.8, 6.3, 6.3,
                          6.0, 5.8, 5.6, 5.5, 5.5, 5.6, 5.5, 5.2, 4.8, 4.3, 3.7, 3.1)
_PLANNED_BY_HOUR: Final = (0.05, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05, 0.5, 3.0, 6.0, 6.5, 6.0,
                           4.0, 5.5, 6.0, 5.5, 4.0, 1.5, 0.3, 0.1, 0.05, 0.05, 0.05, 0.05)
# fmt: on
_PLANNED_WEEKEND: Final = 0.1
_TIME_SHAPE: Final = {  # event type -> (urgent share, hours urgent lags arrival)
    "ed_arrival": (1.0, 0),
    "ed_departure": (1.0, 3),
    "admission": (0.6, 4),
    "outpatient_appointment": (0.0, 0),
    "waiting_list_snapshot": (0.0, 0),
}


@dataclass(frozen=True, slots=True)
class BackfillSlot:
    """Part of the backfill period (at most an hour) and what happens in it."""

    start_ms: int
    length_ms: int
    events: int
    """How many of the backfill's events fall in this slot."""
    weights: list[float]
    """Relative weight of each event type within the slot, in ``EVENT_TYPES`` order."""


def backfill_slots(
    count: int, days: float, end_ms: int, mix: Mapping[str, float]
) -> list[BackfillSlot]:
    """Cut ``[end_ms - days, end_ms)`` into slots and share ``count`` events among them
    by each type's local-time pattern, keeping ``mix`` (normalised) over the period."""
    if count < 0 or days <= 0:
        raise ConfigError("backfill needs count >= 0 and days > 0")
    start_ms = end_ms - round(days * DAY_MS)
    zone = _london()
    slots = []  # (start ms, length ms, weight per event type)
    # Slots end on whole UTC hours, which are whole local hours in Europe/London.
    for s in [start_ms, *range(start_ms - start_ms % HOUR_MS + HOUR_MS, end_ms, HOUR_MS)]:
        length = min(s - s % HOUR_MS + HOUR_MS, end_ms) - s
        local = datetime.fromtimestamp(s / 1000, zone)
        slots.append((s, length, [_time_weight(t, local) * length / HOUR_MS for t in EVENT_TYPES]))
    totals = [sum(w[k] for _, _, w in slots) or 1.0 for k in range(len(EVENT_TYPES))]
    scaled = [mix[t] / totals[k] for k, t in enumerate(EVENT_TYPES)]
    slot_weights = [[m * x for m, x in zip(scaled, w, strict=True)] for _, _, w in slots]
    grand = sum(sum(w) for w in slot_weights)
    plan: list[BackfillSlot] = []
    done, running = 0, 0.0
    for (s, length, _), weights in zip(slots, slot_weights, strict=True):
        running += sum(weights)
        n = round(count * running / grand) - done
        done += n
        plan.append(BackfillSlot(s, length, n, weights))
    return plan


def _time_weight(event_type: str, local: datetime) -> float:
    urgent, lag = _TIME_SHAPE[event_type]
    planned = _PLANNED_BY_HOUR[local.hour] * (_PLANNED_WEEKEND if local.weekday() >= 5 else 1)
    return urgent * _URGENT_BY_HOUR[(local.hour - lag) % 24] + (1 - urgent) * planned


def _london() -> tzinfo:
    try:
        return ZoneInfo("Europe/London")
    except ZoneInfoNotFoundError:
        logger.warning("time zone Europe/London unavailable; backfill pattern uses UTC hours")
        return UTC
