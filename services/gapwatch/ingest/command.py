"""``gapwatch ingest``: run the faust worker."""

from __future__ import annotations

import argparse
import logging
from typing import Any

from gapwatch.settings import Settings

__all__ = ["register"]

logger = logging.getLogger(__name__)


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "ingest", help="run the ingest worker (decode, validate, enrich, count into Redis)"
    )
    parser.add_argument(
        "--web-port", type=int, default=None, help="health/metrics port (GAPWATCH_INGEST_WEB_PORT)"
    )
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace, settings: Settings) -> int:
    # Imported here so other sub-commands never import faust.
    from faust.worker import Worker

    from gapwatch.adapters.avro_codec import AvroCodec
    from gapwatch.adapters.refdata_files import load_reference_data
    from gapwatch.ingest.app import build_worker

    if args.web_port is not None:
        settings = settings.model_copy(
            update={"ingest": settings.ingest.model_copy(update={"web_port": args.web_port})}
        )
    ref = load_reference_data(settings.require_refdata(), with_population=False)
    codec = AvroCodec(settings.schemas_dir)
    worker = build_worker(settings, ref, codec)
    logger.info(
        "starting ingest topic=%s group=%s redis=%s web_port=%d",
        settings.kafka.topic,
        settings.kafka.group_id,
        settings.redis.url,
        settings.ingest.web_port,
    )
    Worker(
        worker.app,
        loglevel=logging.getLevelName(logging.getLogger("gapwatch").level),
        quiet=True,
    ).execute_from_commandline()
    return 0
