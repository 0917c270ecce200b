"""Logging configuration, applied once by the entry point (never at import)."""

from __future__ import annotations

import logging

__all__ = ["configure_logging"]

FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


def configure_logging(level: str = "INFO") -> None:
    """Configure the ``gapwatch`` logger only, and only if nobody has yet."""
    logger = logging.getLogger("gapwatch")
    if logger.handlers:
        return
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter(FORMAT))
    logger.addHandler(handler)
    logger.setLevel(level.upper())
    logger.propagate = False
