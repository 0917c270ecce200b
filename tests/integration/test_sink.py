"""The exactly-once sink against a real Redis: redelivery, stale writers, acks, outages."""

from __future__ import annotations

import asyncio
import time

import pytest

from gapwatch.adapters.metrics import IngestMetrics
from gapwatch.adapters.redis_store import RedisStore
from gapwatch.core.errors import TransientError
from gapwatch.core.validation import Limits
from gapwatch.core.windows import DAY_MS, Bucket
from gapwatch.ingest.processor import ChunkProcessor, InMessage
from gapwatch.ingest.sink import IngestSink

pytestmark = pytest.mark.integration

NOW = time.time_ns() // 1_000_000
TODAY = NOW - NOW % DAY_MS
RETENTION = {"h": 8 * DAY_MS, "d": 400 * DAY_MS}


class RecordingDLQ:
    def __init__(self) -> None:
        self.sent: list[str] = []

    async def publish(self, letters):
        self.sent.extend(letter.reason for letter in letters)


def _sink(codec, ref, store, dlq=None, attempts=60):
    processor = ChunkProcessor(codec, ref, Limits(400 * DAY_MS, 900_000), 8 * DAY_MS)
    return IngestSink(
        topic="t",
        processor=processor,
        store=store,
        dead_letters=dlq or RecordingDLQ(),
        metrics=IngestMetrics.create(),
        clock_ms=lambda: NOW,
        retention_ms=RETENTION,
        max_attempts=attempts,
    )


def _messages(codec, make_event, partition, offsets):
    return [
        InMessage(partition, o, NOW, codec.encode_event(make_event(occurred_at=NOW - 1000)))
        for o in offsets
    ]


async def _counted(store):
    counts = await store.sum_counts(["QOP"], [Bucket("d", TODAY)])
    return counts.get("events|sex|female", 0)


def test_a_redelivered_chunk_counts_once(redis_url, namespace, codec, tiny_ref, make_event):
    async def scenario():
        store = RedisStore.from_url(redis_url, namespace)
        chunk = _messages(codec, make_event, 0, range(10))
        first = _sink(codec, tiny_ref, store)
        await first.handle(chunk)
        await first.drain()
        # a restarted worker gets the same messages again (crash before the Kafka commit)
        second = _sink(codec, tiny_ref, store)
        await second.handle(chunk + _messages(codec, make_event, 0, range(10, 13)))
        await second.drain()
        result = await _counted(store), await store.tallies(), await store.load_offsets("t")
        await store.close()
        return result

    counted, tallies, offsets = asyncio.run(scenario())
    assert counted == 13
    assert tallies["t:0:consumed"] == 13 and tallies["t:0:counted"] == 13
    assert offsets == {0: 13}


def test_a_stale_writer_reprocesses_only_what_is_missing(
    redis_url, namespace, codec, tiny_ref, make_event
):
    async def scenario():
        store = RedisStore.from_url(redis_url, namespace)
        zombie = _sink(codec, tiny_ref, store)
        await zombie.reload_offsets()  # loads "nothing stored" before the other writes
        live = _sink(codec, tiny_ref, store)
        await live.handle(_messages(codec, make_event, 2, range(0, 10)))
        await live.drain()
        await zombie.handle(_messages(codec, make_event, 2, range(5, 15)))
        await zombie.drain()
        result = await _counted(store), await store.load_offsets("t")
        await store.close()
        return result

    counted, offsets = asyncio.run(scenario())
    assert counted == 15  # 0-9 once, then only 10-14 from the overlapping chunk
    assert offsets == {2: 15}


def test_chunks_in_flight_apply_in_order_and_ack_after_the_write(
    redis_url, namespace, codec, tiny_ref, make_event
):
    acked_with_offsets: list[dict[int, int]] = []

    async def scenario():
        store = RedisStore.from_url(redis_url, namespace)
        sink = _sink(codec, tiny_ref, store)

        async def ack():
            acked_with_offsets.append(await store.load_offsets("t"))

        for start in range(0, 50, 10):
            await sink.handle(_messages(codec, make_event, 1, range(start, start + 10)), ack)
        await sink.drain()
        result = await _counted(store)
        await store.close()
        return result

    assert asyncio.run(scenario()) == 50
    assert acked_with_offsets == [{1: n} for n in (10, 20, 30, 40, 50)]


def test_dead_letters_are_sent_before_the_offsets_move(
    redis_url, namespace, codec, tiny_ref, make_event
):
    dlq = RecordingDLQ()

    async def scenario():
        store = RedisStore.from_url(redis_url, namespace)
        sink = _sink(codec, tiny_ref, store, dlq)
        bad = [InMessage(0, 0, NOW, b"junk"), *_messages(codec, make_event, 0, [1])]
        await sink.handle(bad)
        await sink.drain()
        tallies = await store.tallies()
        await store.close()
        return tallies

    tallies = asyncio.run(scenario())
    assert dlq.sent == ["undecodable"]
    assert tallies["t:0:dead_lettered"] == 1 and tallies["t:0:counted"] == 1


def test_redis_down_retries_then_gives_up_without_acking(codec, tiny_ref, make_event):
    acks = []

    async def scenario():
        store = RedisStore.from_url("redis://127.0.0.1:1/0", "nowhere")
        sink = _sink(codec, tiny_ref, store, attempts=2)

        async def ack():
            acks.append(True)

        with pytest.raises(TransientError):
            await sink.handle(_messages(codec, make_event, 0, [0]), ack)
            await sink.drain()

    asyncio.run(scenario())
    assert acks == []
