"""Topic creation and broker reachability, through confluent-kafka's AdminClient.

All partitions are created up front: Tansu cannot add partitions later
(CreatePartitions is unsupported, docs/tansu.md §4), and neither should a pilot need to.
"""

from __future__ import annotations

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]  # re-exported at runtime, not in the stubs

from gapwatch.core.errors import TransientError
from gapwatch.settings import KafkaSettings

__all__ = ["broker_answers", "ensure_topics"]

# Dead letters are kept 30 days for trusts to inspect and replay.
DLQ_RETENTION_MS = 30 * 24 * 3_600_000


def ensure_topics(kafka: KafkaSettings, timeout_s: float = 15.0) -> list[str]:
    """Create the input, DLQ and alerts topics if missing; return the names created."""
    admin = AdminClient({"bootstrap.servers": kafka.bootstrap})
    wanted = [
        NewTopic(kafka.topic, kafka.partitions, kafka.replication_factor),
        NewTopic(
            kafka.dlq_topic,
            kafka.partitions,
            kafka.replication_factor,
            config={"retention.ms": str(DLQ_RETENTION_MS)},
        ),
        # One partition: consumers see every alert's changes in the order decided.
        NewTopic(kafka.alerts_topic, 1, kafka.replication_factor),
    ]
    created: list[str] = []
    futures = admin.create_topics(wanted, request_timeout=timeout_s)
    for name, future in futures.items():
        try:
            future.result(timeout_s)
            created.append(name)
        except KafkaException as exc:
            err = exc.args[0]
            if isinstance(err, KafkaError) and err.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                continue
            raise TransientError(f"cannot create topic {name}: {err}") from exc
    return created


def broker_answers(bootstrap: str, timeout_s: float = 2.0) -> bool:
    """True when a broker returns cluster metadata within the timeout."""
    admin = AdminClient(
        {
            "bootstrap.servers": bootstrap,
            "socket.timeout.ms": int(timeout_s * 1000),
            # A probe expects "connection refused" while nothing listens: say it through
            # the return value, not a screenful of librdkafka errors on stderr.
            "log_level": 0,
        }
    )
    try:
        admin.list_topics(timeout=timeout_s)
    except KafkaException:
        return False
    return True
