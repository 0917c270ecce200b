"""Per-caller rate limiting: a token bucket per key, with the time passed in.

Written here rather than taken from a library (slowapi, limits) because the key is the
verified token's id, known only after our own authentication, and the bucket must be
testable without a clock; it is twenty lines. Memory is bounded: the least recently
seen keys are forgotten first, and a forgotten key starts with a full bucket, which
only ever errs towards letting a request through.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

__all__ = ["Decision", "RateLimiter"]


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    retry_after_s: float
    """How long until one request would be allowed (0 when allowed)."""


class RateLimiter:
    def __init__(self, rate_per_s: float, burst: int, max_keys: int = 100_000) -> None:
        if rate_per_s <= 0 or burst < 1:
            raise ValueError("rate_per_s must be > 0 and burst >= 1")
        self.rate = rate_per_s
        self.burst = float(burst)
        self.max_keys = max_keys
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        """key -> (tokens, at seconds)."""

    def take(self, key: str, now_s: float) -> Decision:
        tokens, at = self._buckets.pop(key, (self.burst, now_s))
        tokens = min(self.burst, tokens + max(now_s - at, 0.0) * self.rate)
        if tokens >= 1.0:
            self._remember(key, tokens - 1.0, now_s)
            return Decision(True, 0.0)
        self._remember(key, tokens, now_s)
        return Decision(False, (1.0 - tokens) / self.rate)

    def _remember(self, key: str, tokens: float, now_s: float) -> None:
        self._buckets[key] = (tokens, now_s)
        while len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)
