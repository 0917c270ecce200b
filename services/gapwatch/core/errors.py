"""Errors, named after what the caller does with them.

::

    GapwatchError
     ├── DecodeError        bytes that are not a valid message: dead-letter, move on
     ├── InvalidEvent       a decoded event breaking the contract: dead-letter, move on
     ├── TransientError     Redis or Kafka unavailable: retry with backoff, commit nothing
     ├── ConfigError        bad settings or reference data: exit non-zero at start-up
     └── StatisticsError    inputs a statistic cannot use: a 4xx at the API
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "DecodeError",
    "GapwatchError",
    "InvalidEvent",
    "StatisticsError",
    "TransientError",
]


class GapwatchError(Exception):
    """Root of every error gapwatch raises on purpose."""


class DecodeError(GapwatchError):
    """The message bytes could not be decoded; ``reason`` is a dead-letter reason code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class InvalidEvent(GapwatchError):
    """A decoded event breaks the event contract (a required field empty or malformed)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class TransientError(GapwatchError):
    """A dependency (Redis, Kafka) is unavailable; the operation may succeed later."""


class ConfigError(GapwatchError):
    """Settings or reference data are unusable; the process must not start."""


class StatisticsError(GapwatchError, ValueError):
    """Inputs a statistic cannot be computed from (negative count, x > n for a proportion,
    confidence out of range...): the caller's mistake, reported as a 4xx by the API."""
