"""``gapwatch topics create``: create the input and dead-letter topics, idempotently."""

from __future__ import annotations

import argparse
import logging
from typing import Any

from gapwatch.adapters.kafka_admin import ensure_topics
from gapwatch.settings import Settings

__all__ = ["register"]

logger = logging.getLogger(__name__)


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "topics", help="create the Kafka topics (input, dead letters)"
    )
    parser.add_argument("action", choices=["create"], help="what to do")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace, settings: Settings) -> int:
    created = ensure_topics(settings.kafka)
    for name in created:
        logger.info("topic created topic=%s", name)
    return 0
