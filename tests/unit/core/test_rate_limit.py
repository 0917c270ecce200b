"""The per-token bucket (core.rate_limit), on a clock the test moves."""

from __future__ import annotations

import pytest

from gapwatch.core.rate_limit import RateLimiter


def test_a_burst_then_the_steady_rate() -> None:
    limiter = RateLimiter(rate_per_s=2, burst=3)
    assert [limiter.take("a", 0.0).allowed for _ in range(4)] == [True, True, True, False]
    refused = limiter.take("a", 0.0)
    assert refused.retry_after_s == pytest.approx(0.5)
    assert limiter.take("a", 0.5).allowed
    assert not limiter.take("a", 0.5).allowed
    # Another key has its own bucket.
    assert limiter.take("b", 0.5).allowed


def test_a_quiet_key_refills_to_the_burst_only() -> None:
    limiter = RateLimiter(rate_per_s=1, burst=2)
    limiter.take("a", 0.0)
    allowed = [limiter.take("a", 100.0).allowed for _ in range(3)]
    assert allowed == [True, True, False]


def test_memory_is_bounded_and_forgetting_only_ever_allows() -> None:
    limiter = RateLimiter(rate_per_s=1, burst=1, max_keys=10)
    for i in range(100):
        limiter.take(f"k{i}", 0.0)
    assert len(limiter._buckets) == 10
    assert limiter.take("k0", 0.0).allowed  # forgotten: a full bucket again


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="rate_per_s"):
        RateLimiter(rate_per_s=0, burst=1)
