"""``gapwatch alerter``: chart every ICB's gap series, watch the feeds, deliver alerts.

Serves ``/metrics`` (``gapwatch_gap_alert``, ``gapwatch_feed_stale``, cycle timings) on
``alerts.port`` (default 6067). Channels: the Redis change stream (SSE in the API), the
Kafka topic ``gapwatch.alerts.v1``, webhooks (``GAPWATCH_ALERTS_WEBHOOK_URLS``, a JSON
list) and Alertmanager (``GAPWATCH_ALERTS_ALERTMANAGER_URLS``).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from typing import Any

from gapwatch.settings import Settings

__all__ = ["register"]

logger = logging.getLogger(__name__)


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "alerter",
        help="SPC alerts on inequality gaps and stale feeds",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--once", action="store_true", help="one evaluation cycle, then exit")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace, settings: Settings) -> int:
    return asyncio.run(_main(args, settings))


async def _main(args: argparse.Namespace, settings: Settings) -> int:
    from prometheus_client import start_http_server

    from gapwatch.adapters.alert_store import AlertStore
    from gapwatch.adapters.redis_store import RedisStore
    from gapwatch.adapters.refdata_files import load_reference_data
    from gapwatch.alerting.channels import build_channels
    from gapwatch.alerting.metrics import AlerterMetrics
    from gapwatch.alerting.service import Alerter

    ref = load_reference_data(settings.require_refdata())
    counts = RedisStore.from_url(settings.redis.url, settings.redis.namespace)
    store = AlertStore.from_url(settings.redis.url, settings.redis.namespace)
    metrics = AlerterMetrics.create()
    channels = build_channels(settings, metrics.registry)
    alerter = Alerter(settings, ref, counts, store, channels, metrics)
    a = settings.alerts
    senders = [asyncio.create_task(channel.run()) for channel in channels]
    if args.once:
        cycle = await alerter.run_once()
        for channel in channels:
            await channel.close()
        for task in senders:
            task.cancel()
        logger.info(
            "one cycle icbs=%d series=%d changes=%d",
            cycle.icbs_evaluated,
            cycle.series_charted,
            len(cycle.events),
        )
        return 0
    server, thread = start_http_server(a.port, a.host, registry=metrics.registry)
    logger.info("alerter serving metrics host=%s port=%d", a.host, a.port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await alerter.run(stop)
    finally:
        for task in senders:
            task.cancel()
        server.shutdown()
        await counts.close()
        await store.close()
    return 0
