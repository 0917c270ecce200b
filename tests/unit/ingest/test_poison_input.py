"""Fuzzed message bytes never crash or stall the chunk processor: every message is
consumed, and every event in it is counted or dead-lettered with a known reason."""

from __future__ import annotations

import random
import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gapwatch.core.identifiers import redact
from gapwatch.core.validation import REASONS, Limits
from gapwatch.ingest.dedup import SeenIds
from gapwatch.ingest.processor import ChunkProcessor, InMessage
from tests.conftest import NOW_MS

LIMITS = Limits(retention_ms=400 * 86_400_000, future_skew_ms=900_000)
FUZZ = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def _check(processor: ChunkProcessor, payloads: list[bytes]) -> None:
    messages = [InMessage(i % 3, i, None, p) for i, p in enumerate(payloads)]
    started = time.monotonic()
    result = processor.process(messages, NOW_MS)
    assert time.monotonic() - started < 5, "a poison message stalled the processor"
    assert sum(t.messages for t in result.partitions.values()) == len(payloads)
    for tally in result.partitions.values():
        assert tally.consumed == tally.counted + tally.dead_lettered
        assert tally.consumed >= tally.messages  # an undecodable message is one event
    assert {d.reason for d in result.dead_letters} <= set(REASONS)
    assert all(d.detail for d in result.dead_letters)
    assert all(d.detail.isascii() and redact(d.detail) == d.detail for d in result.dead_letters)


@FUZZ
@given(st.lists(st.binary(max_size=300), min_size=1, max_size=8))
def test_random_bytes(codec, tiny_ref, payloads):
    _check(
        ChunkProcessor(codec, tiny_ref, LIMITS, 8 * 86_400_000, SeenIds(8 * 86_400_000)), payloads
    )


@FUZZ
@given(st.lists(st.binary(max_size=60), min_size=1, max_size=4), st.integers(1, 2))
def test_random_bodies_behind_a_valid_schema_id(codec, tiny_ref, bodies, schema_id):
    framed = [b"\x00" + schema_id.to_bytes(4, "big") + body for body in bodies]
    _check(ChunkProcessor(codec, tiny_ref, LIMITS, 8 * 86_400_000, SeenIds(8 * 86_400_000)), framed)


@FUZZ
@given(st.integers(0, 2**32 - 1), st.integers(1, 8))
def test_mutated_valid_messages(codec, tiny_ref, make_event, seed, flips):
    rng = random.Random(seed)
    valid = codec.encode_batch([make_event(lsoa_code="E01000101") for _ in range(3)])
    mutated = bytearray(valid)
    for _ in range(flips):
        mutated[rng.randrange(5, len(mutated))] = rng.randrange(256)
    truncated = bytes(valid[: rng.randrange(5, len(valid))])
    _check(
        ChunkProcessor(codec, tiny_ref, LIMITS, 8 * 86_400_000, SeenIds(8 * 86_400_000)),
        [bytes(mutated), truncated],
    )
