"""``gapwatch api``: serve the HTTP API with uvicorn."""

from __future__ import annotations

import argparse
import gc
import logging
from typing import Any

from gapwatch.settings import Settings

__all__ = ["register"]

logger = logging.getLogger(__name__)


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser("api", help="serve the HTTP API")
    parser.add_argument("--port", type=int, default=None, help="port (GAPWATCH_API_PORT)")
    parser.add_argument("--host", default=None, help="bind address (GAPWATCH_API_HOST)")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from gapwatch.adapters.alert_store import AlertStore
    from gapwatch.adapters.audit_log import AuditLog
    from gapwatch.adapters.dead_letter_reader import DeadLetterReader
    from gapwatch.adapters.kafka_admin import broker_answers
    from gapwatch.adapters.redis_store import RedisStore
    from gapwatch.adapters.refdata_files import load_reference_data
    from gapwatch.api.app import create_app

    ref = load_reference_data(settings.require_refdata())
    # The reference data lives as long as the process: keep it out of every garbage
    # collection (a full collection over it is a ~20 ms pause in the middle of requests).
    gc.freeze()
    # Short: a request waiting on a hung Redis should fail fast with 503.
    store = RedisStore.from_url(settings.redis.url, settings.redis.namespace, timeout_s=2.0)
    # Longer than the SSE stream's 1 s blocking read.
    alert_store = AlertStore.from_url(settings.redis.url, settings.redis.namespace, timeout_s=5.0)

    audit = AuditLog.from_url(
        settings.redis.url, settings.redis.namespace, settings.audit.retention_days
    )

    async def close() -> None:
        await store.close()
        await alert_store.close()
        await audit.close()

    app = create_app(
        settings,
        store,
        ref,
        broker_check=lambda: broker_answers(settings.kafka.bootstrap),
        on_shutdown=close,
        days=store,
        alerts=alert_store,
        audit=audit,
        # Short reads of the topic's tail, cached for seconds: a polling dashboard
        # costs the broker one read per 5 s.
        dead_letters=DeadLetterReader.kafka(settings.kafka.bootstrap, settings.kafka.dlq_topic),
    )
    host = args.host or settings.api.host
    port = args.port if args.port is not None else settings.api.port
    logger.info("serving api host=%s port=%d", host, port)
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
    return 0
