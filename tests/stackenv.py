"""Environment for gapwatch processes isolated to one test."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from gapwatch.devstack.services import free_port


def stack_env(broker: str, redis_url: str, namespace: str, run_dir: Path) -> dict[str, str]:
    """Environment for gapwatch processes isolated to one test."""
    tag = uuid.uuid4().hex[:8]
    return {
        **os.environ,
        "GAPWATCH_KAFKA_BOOTSTRAP": broker,
        "GAPWATCH_KAFKA_TOPIC": f"t-{tag}.encounters",
        "GAPWATCH_KAFKA_DLQ_TOPIC": f"t-{tag}.encounters.dlq",
        "GAPWATCH_KAFKA_GROUP_ID": f"g-{tag}",
        "GAPWATCH_KAFKA_PARTITIONS": "4",
        "GAPWATCH_KAFKA_SESSION_TIMEOUT_S": "6",
        "GAPWATCH_KAFKA_HEARTBEAT_INTERVAL_S": "2",
        "GAPWATCH_REDIS_URL": redis_url,
        "GAPWATCH_REDIS_NAMESPACE": namespace,
        "GAPWATCH_INGEST_WEB_PORT": str(free_port()),
        "GAPWATCH_INGEST_DATA_DIR": str(run_dir / "faust"),
        "GAPWATCH_API_PORT": str(free_port()),
        "GAPWATCH_RUN_DIR": str(run_dir),
    }
