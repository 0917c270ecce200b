"""Retry delays, computed purely; the adapter does the sleeping."""

from __future__ import annotations

__all__ = ["backoff_ms"]


def backoff_ms(attempt: int, base_ms: int = 100, cap_ms: int = 5_000) -> int:
    """Exponential delay before retry ``attempt`` (0-based), capped.

    >>> [backoff_ms(a) for a in range(8)]
    [100, 200, 400, 800, 1600, 3200, 5000, 5000]
    """
    if attempt < 0:
        raise ValueError("attempt must be >= 0")
    return min(cap_ms, base_ms * (1 << min(attempt, 30)))
