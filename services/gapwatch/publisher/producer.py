"""Publish encounter events to Kafka: the trust-side producer library.

Events are grouped per provider trust and sent as one ``EncounterBatch`` message per
``events_per_message`` events (or one ``EncounterEvent`` per message when that is 1).
The message key is the provider's ODS code, so all of a trust's events land in one
partition in the order they were sent; the ingest side relies on that for per-trust
freshness. The producer is idempotent with ``acks=all``, so librdkafka's retries can
neither duplicate nor reorder a trust's messages.

Every message carries the header ``gapwatch.produced_at_ms`` (epoch ms, wall clock at
produce time) so ingest can measure publish-to-count latency independently of the
broker's timestamp type.

No identifier leaves the trust through this library. An event may be given with
``nhs_number`` instead of ``person_key``: the producer's ``Pseudonymiser`` (the trust's
key) turns it into ``person_key``, and ``nhs_number`` is dropped before encoding.
Without a pseudonymiser such an event is refused. So is any event that the ingest
worker would dead-letter as ``identifier_in_field`` (an NHS number in any field, a
postcode outside ``postcode``): refusing it here keeps the identifier off the broker,
whose topics are storage too.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from confluent_kafka import KafkaError, Message, Producer

from gapwatch.adapters.avro_codec import AvroCodec
from gapwatch.core.errors import ConfigError, TransientError
from gapwatch.core.identifiers import identifier_fields
from gapwatch.publisher.pseudonym import Pseudonymiser
from gapwatch.settings import KafkaSettings

__all__ = [
    "NHS_NUMBER_FIELD",
    "PRODUCED_AT_HEADER",
    "DeliveryStats",
    "EncounterProducer",
    "KafkaProducerLike",
    "ProducerOptions",
    "RefusedEvent",
    "kafka_config",
    "pseudonymised",
]

logger = logging.getLogger(__name__)

PRODUCED_AT_HEADER = "gapwatch.produced_at_ms"
NHS_NUMBER_FIELD = "nhs_number"
"""Not an EncounterEvent field: an input the library turns into ``person_key``."""
MAX_EVENTS_PER_MESSAGE = 5000
"""The EncounterBatch schema's sensible upper bound; 5,000 x ~200 B stays far below 1 MB."""


class RefusedEvent(ValueError):
    """An event this library will not send, because it would carry an identifier. The
    message names fields, never values."""


def pseudonymised(
    event: Mapping[str, Any], pseudonymiser: Pseudonymiser | None
) -> Mapping[str, Any]:
    """``event`` ready to encode: ``nhs_number`` replaced by ``person_key``, and checked
    for identifiers in any field.

    Raises ``ConfigError`` for an ``nhs_number`` without a pseudonymiser (no key is
    configured). Raises ``RefusedEvent`` when both ``nhs_number`` and ``person_key``
    are given, or when an identifier is left in any field. Raises ``InvalidNhsNumber``
    (a ``ValueError``) for a malformed number. The caller's mapping is never changed.
    """
    if NHS_NUMBER_FIELD in event:
        nhs_number = event[NHS_NUMBER_FIELD]
        event = {k: v for k, v in event.items() if k != NHS_NUMBER_FIELD}
        if nhs_number is not None:
            if pseudonymiser is None:
                raise ConfigError(
                    "an event carries nhs_number but the producer has no pseudonymiser: "
                    "set the trust's key (GAPWATCH_PUBLISHER_PERSON_KEY_SECRET)"
                )
            if event.get("person_key"):
                raise RefusedEvent("an event carries both nhs_number and person_key")
            event["person_key"] = pseudonymiser.person_key(nhs_number)
    found = identifier_fields(event)
    if found:
        where = ", ".join(f"{kind} in {name}" for name, kind in found)
        raise RefusedEvent(f"an event carries an identifier where it must not: {where}")
    return event


class KafkaProducerLike(Protocol):
    """The part of ``confluent_kafka.Producer`` used here (tests pass a fake)."""

    def produce(
        self,
        topic: str,
        value: bytes,
        key: bytes,
        *,
        on_delivery: Callable[[KafkaError | None, Message], None],
        headers: dict[str, str | bytes | None],
    ) -> None: ...

    def poll(self, timeout: float) -> int: ...
    def flush(self, timeout: float) -> int: ...


@dataclass(frozen=True, slots=True)
class ProducerOptions:
    events_per_message: int = 500
    """Events per Kafka message; 1 sends plain EncounterEvent messages."""
    max_wait_ms: int = 500
    """Longest an event waits in a trust's part-filled batch before it is sent anyway:
    bounds added latency in live mode, where a trust may take minutes to fill a batch."""
    linger_ms: int = 50
    """librdkafka linger.ms: 50 ms lets it pack many messages per request (docs/tansu.md §5)."""
    batch_bytes: int = 1_000_000
    """librdkafka batch.size, bytes per partition request."""
    compression: str = "lz4"
    delivery_timeout_ms: int = 120_000
    """A message not acknowledged after this long (retries included) is reported failed."""
    extra: Mapping[str, str | int | float | bool] = field(default_factory=dict)
    """Any further librdkafka properties (security, client.id, ...), applied last."""

    def __post_init__(self) -> None:
        if not 1 <= self.events_per_message <= MAX_EVENTS_PER_MESSAGE:
            raise ConfigError(f"events per message must be 1..{MAX_EVENTS_PER_MESSAGE}")
        if self.max_wait_ms < 0 or self.linger_ms < 0 or self.batch_bytes < 1:
            raise ConfigError("max_wait_ms and linger_ms must be >= 0, batch_bytes >= 1")


@dataclass(slots=True)
class DeliveryStats:
    """Counts by outcome; ``events_pending`` is what was handed over but never reported."""

    messages_sent: int = 0
    events_sent: int = 0
    messages_delivered: int = 0
    events_delivered: int = 0
    messages_failed: int = 0
    events_failed: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    """Failed events by librdkafka error name (e.g. ``_MSG_TIMED_OUT``)."""

    @property
    def events_pending(self) -> int:
        return self.events_sent - self.events_delivered - self.events_failed

    def as_dict(self) -> dict[str, Any]:
        return {
            "messages_sent": self.messages_sent,
            "sent": self.events_sent,
            "delivered": self.events_delivered,
            "failed": self.events_failed,
            "pending": self.events_pending,
            "failures": dict(self.failures),
        }


def kafka_config(kafka: KafkaSettings, options: ProducerOptions) -> dict[str, Any]:
    """librdkafka properties: idempotent, acks=all, retries bounded by the delivery timeout."""
    config: dict[str, Any] = {
        "bootstrap.servers": kafka.bootstrap,
        "client.id": "gapwatch-publisher",
        "enable.idempotence": True,
        "acks": "all",
        "retries": 2_147_483_647,
        "delivery.timeout.ms": options.delivery_timeout_ms,
        "linger.ms": options.linger_ms,
        "batch.size": options.batch_bytes,
        "compression.type": options.compression,
        # librdkafka's own log lines (broker down, retries) go through our logging,
        # delivered on poll(), instead of raw lines on stderr.
        "logger": logging.getLogger("gapwatch.publisher.librdkafka"),
    }
    config.update(options.extra)
    return config


class EncounterProducer:
    """Buffer events per trust, send them as batches, count delivery reports.

    ``pseudonymiser`` turns events' ``nhs_number`` into ``person_key`` (see
    ``pseudonymised``, which also says what ``send`` refuses).
    """

    def __init__(
        self,
        kafka: KafkaSettings,
        codec: AvroCodec,
        options: ProducerOptions | None = None,
        *,
        producer: KafkaProducerLike | None = None,
        clock_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
        pseudonymiser: Pseudonymiser | None = None,
    ) -> None:
        self.options = options or ProducerOptions()
        self._pseudonymiser = pseudonymiser
        self.stats = DeliveryStats()
        self._topic = kafka.topic
        self._codec = codec
        self._clock_ms = clock_ms
        self._producer: KafkaProducerLike = producer or Producer(kafka_config(kafka, self.options))
        self._buffers: dict[str, list[Mapping[str, Any]]] = {}
        self._first_buffered_ms: dict[str, int] = {}

    def send(self, event: Mapping[str, Any]) -> None:
        """Queue one event; it goes out when its trust's batch is full or ``max_wait_ms`` old.

        A refused event raises (see ``pseudonymised``) and nothing of it is queued.
        """
        event = pseudonymised(event, self._pseudonymiser)
        provider = str(event["provider_code"])
        buffer = self._buffers.get(provider)
        if buffer is None:
            buffer = self._buffers[provider] = []
            self._first_buffered_ms[provider] = self._clock_ms()
        buffer.append(event)
        if len(buffer) >= self.options.events_per_message:
            self._send_buffer(provider)

    def send_many(self, events: Iterable[Mapping[str, Any]]) -> None:
        for event in events:
            self.send(event)

    def flush_due(self) -> None:
        """Send part-filled batches older than ``max_wait_ms`` and serve delivery reports;
        call this regularly (live mode does, every tick)."""
        now = self._clock_ms()
        for provider in [
            p for p, t in self._first_buffered_ms.items() if now - t >= self.options.max_wait_ms
        ]:
            self._send_buffer(provider)
        self._producer.poll(0)

    def flush(self, timeout_s: float = 30.0) -> DeliveryStats:
        """Send every buffered event and wait up to ``timeout_s`` for delivery reports.

        Events still unreported at the timeout stay in ``stats.events_pending``.
        """
        for provider in list(self._buffers):
            self._send_buffer(provider)
        remaining = self._producer.flush(timeout_s)
        if remaining:
            logger.warning(
                "flush timed out messages_in_queue=%d events_pending=%d timeout_s=%.1f",
                remaining,
                self.stats.events_pending,
                timeout_s,
            )
        return self.stats

    def _send_buffer(self, provider: str) -> None:
        events = self._buffers.pop(provider)
        del self._first_buffered_ms[provider]
        if self.options.events_per_message == 1:
            for event in events:
                self._produce(provider, self._codec.encode_event(event), 1)
        else:
            payload = self._codec.encode_batch(events, str(uuid.uuid4()))
            self._produce(provider, payload, len(events))

    def _produce(self, key: str, payload: bytes, n_events: int) -> None:
        def on_delivery(err: KafkaError | None, _msg: Message) -> None:
            if err is None:
                self.stats.messages_delivered += 1
                self.stats.events_delivered += n_events
            else:
                self.stats.messages_failed += 1
                self.stats.events_failed += n_events
                self.stats.failures[_reason(err)] += n_events
                logger.debug("delivery failed key=%s events=%d error=%s", key, n_events, err)

        headers: dict[str, str | bytes | None] = {PRODUCED_AT_HEADER: str(self._clock_ms())}
        for _ in range(600):
            try:
                self._producer.produce(
                    self._topic, payload, key.encode(), headers=headers, on_delivery=on_delivery
                )
                break
            except BufferError:
                # librdkafka's local queue is full: serve delivery reports to drain it.
                self._producer.poll(0.1)
        else:
            raise TransientError(
                f"producer queue stayed full for 60 s (topic={self._topic}); is the broker up?"
            )
        self.stats.messages_sent += 1
        self.stats.events_sent += n_events
        self._producer.poll(0)


def _reason(err: KafkaError) -> str:
    return str(err.name())
