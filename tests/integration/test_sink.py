"""The exactly-once sink against a real Redis: redelivery, stale writers, acks, outages."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from gapwatch.adapters.metrics import IngestMetrics
from gapwatch.adapters.redis_store import RedisStore
from gapwatch.core.errors import TransientError
from gapwatch.core.validation import Limits
from gapwatch.core.windows import DAY_MS, Bucket
from gapwatch.ingest.dedup import SeenIds
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


def _sink(codec, ref, store, dlq=None, attempts=60, on_state_lost=None):
    processor = ChunkProcessor(
        codec, ref, Limits(400 * DAY_MS, 900_000), 8 * DAY_MS, SeenIds(8 * DAY_MS)
    )
    return IngestSink(
        topic="t",
        processor=processor,
        store=store,
        dead_letters=dlq or RecordingDLQ(),
        metrics=IngestMetrics.create(),
        clock_ms=lambda: NOW,
        retention_ms=RETENTION,
        max_attempts=attempts,
        on_state_lost=on_state_lost,
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
        await zombie.handle([])  # loads "nothing stored" before the other writes
        await zombie.drain()
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


def _with_ids(codec, make_event, partition, offsets, ids):
    return [
        InMessage(
            partition,
            o,
            NOW,
            codec.encode_event(make_event(occurred_at=NOW - 1000, event_id=event_id)),
        )
        for o, event_id in zip(offsets, ids, strict=True)
    ]


def test_a_republished_event_id_counts_once_even_after_a_restart(
    redis_url, namespace, codec, tiny_ref, make_event
):
    ids = [str(uuid.UUID(int=i + 1)) for i in range(6)]

    async def scenario():
        store = RedisStore.from_url(redis_url, namespace)
        first = _sink(codec, tiny_ref, store)
        # ids 0-3 once, id 0 again in the same chunk
        await first.handle(_with_ids(codec, make_event, 0, range(5), [*ids[:4], ids[0]]))
        await first.drain()
        # a new worker (its index loads from Redis): 2-3 again, 4-5 new, 5 twice
        second = _sink(codec, tiny_ref, store)
        await second.handle(_with_ids(codec, make_event, 0, range(5, 10), [*ids[2:], ids[5]]))
        await second.drain()
        # the same ids on another partition are a different producer's: counted
        await second.handle(_with_ids(codec, make_event, 1, range(2), ids[:2]))
        await second.drain()
        result = await _counted(store), await store.tallies()
        await store.close()
        return result

    counted, tallies = asyncio.run(scenario())
    assert counted == 6 + 2
    assert tallies["t:0:consumed"] == 10
    assert tallies["t:0:counted"] == 6 and tallies["t:0:duplicates"] == 4
    assert tallies["t:1:counted"] == 2 and tallies["t:1:duplicates"] == 0


def test_an_emptied_store_stops_the_writer_and_it_replays_from_the_start(
    redis_url, namespace, codec, tiny_ref, make_event
):
    import redis as sync_redis

    lost: list[bool] = []
    acks: list[bool] = []

    async def scenario():
        store = RedisStore.from_url(redis_url, namespace)
        sink = _sink(codec, tiny_ref, store, on_state_lost=lambda: lost.append(True))
        assert await sink.resume_from_store([0]) == {0: 0}
        await sink.handle(_messages(codec, make_event, 0, range(10)))
        await sink.drain()
        # Redis restarted without persistence: every key of the namespace is gone
        client = sync_redis.Redis.from_url(redis_url)
        client.delete(*client.keys(f"gw:{{{namespace}}}:*"))
        chunk = _messages(codec, make_event, 0, range(10, 15))

        async def ack():
            acks.append(True)

        await sink.handle(chunk, ack)
        await sink.drain()
        assert lost == [True] and acks == []  # dropped: nothing applied, nothing acked
        assert sink.readiness.state == "rebuilding"
        assert await _counted(store) == 0
        # the rebalance that follows: positions come from the (empty) store
        positions = await sink.resume_from_store([0])
        await sink.handle(_messages(codec, make_event, 0, range(15)))
        await sink.drain()
        sink.readiness.observe_highwaters({0: 15}, sink.next_offsets())
        result = positions, await _counted(store), await store.tallies(), sink.readiness.state
        await store.close()
        return result

    positions, counted, tallies, state = asyncio.run(scenario())
    assert positions == {0: 0}
    assert counted == 15 and tallies["t:0:consumed"] == 15
    assert state == "ready"


def test_gapwatch_rebuild_is_noticed_by_an_idle_worker(
    redis_url, namespace, codec, tiny_ref, make_event
):
    lost: list[bool] = []

    async def scenario():
        store = RedisStore.from_url(redis_url, namespace)
        sink = _sink(codec, tiny_ref, store, on_state_lost=lambda: lost.append(True))
        await sink.resume_from_store([0])
        await sink.handle(_messages(codec, make_event, 0, range(3)))
        await sink.drain()
        before = sink.epoch
        await sink.check_epoch()
        assert lost == []
        new_epoch = await store.rebuild()
        await sink.check_epoch()
        assert lost == [True]
        keys_left = await store.load_offsets("t"), await _counted(store)
        positions = await sink.resume_from_store([0])
        await store.close()
        return before, new_epoch, sink.epoch, keys_left, positions

    before, new_epoch, adopted, (offsets, counted), positions = asyncio.run(scenario())
    assert new_epoch != before and adopted == new_epoch
    assert offsets == {} and counted == 0
    assert positions == {0: 0}


def test_a_position_past_what_redis_holds_is_re_checked_before_anything_is_applied(
    redis_url, namespace, codec, tiny_ref, make_event
):
    rejoins: list[bool] = []
    clock = [NOW]

    async def scenario():
        store = RedisStore.from_url(redis_url, namespace)
        sink = _sink(codec, tiny_ref, store, on_state_lost=lambda: rejoins.append(True))
        sink._clock = lambda: clock[0]
        await sink.resume_from_store([0])
        await sink.handle(_messages(codec, make_event, 0, range(10)))
        await sink.drain()
        # re-assigned, but the consumer delivers from 15: offsets 10-14 would be skipped
        assert await sink.resume_from_store([0]) == {0: 10}
        await sink.handle(_messages(codec, make_event, 0, range(15, 20)))
        await sink.drain()
        held = (list(rejoins), await _counted(store))
        clock[0] += 11_000  # nothing at or before offset 10 arrived within the grace
        assert sink.positions_overdue()
        halted = (list(rejoins), await _counted(store))
        # after the re-join the broker again starts at 15: a real gap in the log
        await sink.resume_from_store([0])
        await sink.handle(_messages(codec, make_event, 0, range(15, 20)))
        await sink.drain()
        result = held, halted, await _counted(store), await store.load_offsets("t")
        await store.close()
        return result

    held, halted, counted, offsets = asyncio.run(scenario())
    assert held == ([], 10)  # held back, not applied, not yet re-joined
    assert halted == ([True], 10)
    assert counted == 15 and offsets == {0: 20}


def test_messages_fetched_before_a_rebalance_are_held_back_until_the_re_read_arrives(
    redis_url, namespace, codec, tiny_ref, make_event
):
    rejoins: list[bool] = []

    async def scenario():
        store = RedisStore.from_url(redis_url, namespace)
        sink = _sink(codec, tiny_ref, store, on_state_lost=lambda: rejoins.append(True))
        await sink.resume_from_store([0])
        await sink.handle(_messages(codec, make_event, 0, range(10)))
        await sink.drain()
        await sink.resume_from_store([0])
        # the take buffer still held 30-31 from before the rebalance; then 10-14 re-read
        stale = _messages(codec, make_event, 0, [30, 31])
        await sink.handle(stale + _messages(codec, make_event, 0, range(10, 15)))
        await sink.drain()
        result = await _counted(store), await store.load_offsets("t")
        await store.close()
        return result

    counted, offsets = asyncio.run(scenario())
    assert rejoins == []
    assert counted == 15 and offsets == {0: 15}
