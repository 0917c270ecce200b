"""Send a scenario's messages and remember which ones the broker acknowledged.

The producer is the publisher library's configuration (idempotent, ``acks=all``,
``publisher.producer.kafka_config``) with a short delivery timeout: when the broker is
down, a message fails after ``delivery_timeout_ms`` and is sent again in the next round,
until every message is acknowledged. That is what a trust's integration engine should
do, and it may store a message twice (the broker kept a batch whose ack was lost): the
worker's de-duplication has to absorb those copies.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence

from confluent_kafka import KafkaError, Message, Producer

from gapwatch.devstack.chaos.stream import Msg
from gapwatch.publisher.producer import ProducerOptions, kafka_config
from gapwatch.settings import KafkaSettings

__all__ = ["Publisher"]

logger = logging.getLogger(__name__)

ROUNDS = 20
"""Re-send rounds before giving up; each round lasts at most the delivery timeout."""


class Publisher:
    def __init__(
        self,
        bootstrap: str,
        topic: str,
        *,
        delivery_timeout_ms: int = 15_000,
        rate_per_s: float | None = None,
    ) -> None:
        self._kafka = KafkaSettings(bootstrap=bootstrap, topic=topic)
        self._options = ProducerOptions(delivery_timeout_ms=delivery_timeout_ms)
        self._rate = rate_per_s
        self.acked_messages = 0
        self.acked_events = 0
        self.acked_payloads: set[bytes] = set()
        self.failures = 0
        """Delivery reports with an error (each such message was sent again)."""
        self.sends = 0
        self.error: str | None = None
        self._thread: threading.Thread | None = None

    def send(self, messages: Sequence[Msg]) -> None:
        """Send every message, in order, until each is acknowledged (``ROUNDS`` at most)."""
        pending = list(range(len(messages)))
        for _ in range(ROUNDS):
            if not pending:
                return
            pending = self._round(messages, pending)
        self.error = f"{len(pending)} messages never acknowledged after {ROUNDS} rounds"

    def start(self, messages: Sequence[Msg]) -> None:
        """``send`` in a background thread; ``join`` waits for it."""

        def run() -> None:
            try:
                self.send(messages)
            except Exception as exc:  # reported by join(); the thread must not die silently
                self.error = f"{type(exc).__name__}: {exc}"

        self._thread = threading.Thread(target=run, name="chaos-publisher", daemon=True)
        self._thread.start()

    def join(self, timeout_s: float) -> None:
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                self.error = self.error or f"still sending after {timeout_s:.0f} s"

    def _round(self, messages: Sequence[Msg], indices: list[int]) -> list[int]:
        producer = Producer(kafka_config(self._kafka, self._options))
        acked: set[int] = set()
        started = time.monotonic()
        for n, i in enumerate(indices):
            if self._rate:
                while (wait := started + n / self._rate - time.monotonic()) > 0:
                    producer.poll(wait)
            self._produce(producer, messages[i], i, acked)
        producer.flush(self._options.delivery_timeout_ms / 1000 + 5)
        # A new producer per round: after a fatal error (a fenced or out-of-sequence
        # idempotent producer) the old one refuses everything.
        return [i for i in indices if i not in acked]

    def _produce(self, producer: Producer, msg: Msg, index: int, acked: set[int]) -> None:
        def on_delivery(err: KafkaError | None, _m: Message) -> None:
            if err is None:
                acked.add(index)
                self.acked_messages += 1
                self.acked_events += msg.events
                self.acked_payloads.add(msg.value)
            else:
                self.failures += 1
                logger.debug("delivery failed index=%d error=%s", index, err)

        while True:
            try:
                producer.produce(self._kafka.topic, msg.value, msg.key, on_delivery=on_delivery)
                break
            except BufferError:  # librdkafka's queue is full: serve reports to drain it
                producer.poll(0.1)
        self.sends += 1
        producer.poll(0)
