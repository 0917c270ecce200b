"""The event types the publisher makes, the data set each belongs to, and the mix of them.

Shared by the generator (``scenario``), the backfill timeline (``timeline``) and the
CLI's ``--mix`` flag, so the list of types and the rules for a valid mix live in one
place. A mix is always normalised over ``EVENT_TYPES``: every type present, weights
summing to 1.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Final

from gapwatch.core.errors import ConfigError

__all__ = ["DATASET_OF", "DEFAULT_MIX", "EVENT_TYPES", "normalise_mix", "parse_mix"]

EVENT_TYPES: Final = (
    "ed_arrival",
    "ed_departure",
    "admission",
    "outpatient_appointment",
    "waiting_list_snapshot",
)
DATASET_OF: Final[Mapping[str, str]] = {
    "ed_arrival": "ECDS",
    "ed_departure": "ECDS",
    "admission": "APC",
    "outpatient_appointment": "OPA",
    "waiting_list_snapshot": "WLMDS",
}
DEFAULT_MIX: Final[Mapping[str, float]] = {
    "ed_arrival": 0.40,
    "ed_departure": 0.20,
    "admission": 0.15,
    "outpatient_appointment": 0.20,
    "waiting_list_snapshot": 0.05,
}


def parse_mix(text: str) -> dict[str, float]:
    """``"ed_arrival=0.5,admission=0.5"`` -> a mix; unnamed types get 0, then normalised."""
    mix = dict.fromkeys(EVENT_TYPES, 0.0)
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = part.partition("=")
        if not sep or name.strip() not in mix:
            raise ConfigError(
                f"mix entry {part!r}: expected <event_type>=<weight>, "
                f"event types {', '.join(EVENT_TYPES)}"
            )
        try:
            mix[name.strip()] = float(value)
        except ValueError as exc:
            raise ConfigError(f"mix entry {part!r}: weight is not a number") from exc
    return normalise_mix(mix)


def normalise_mix(mix: Mapping[str, float]) -> dict[str, float]:
    """Check a mix and scale it to sum to 1 over ``EVENT_TYPES``; types it omits get 0."""
    unknown = set(mix) - set(EVENT_TYPES)
    if unknown:
        raise ConfigError(f"unknown event types in mix: {sorted(unknown)}")
    if any(not math.isfinite(v) or v < 0 for v in mix.values()):
        raise ConfigError("mix weights must be finite and non-negative")
    total = sum(mix.values())
    if total <= 0:
        raise ConfigError("mix weights must not all be zero")
    return {t: mix.get(t, 0.0) / total for t in EVENT_TYPES}
