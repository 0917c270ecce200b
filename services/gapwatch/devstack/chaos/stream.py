"""The seeded message stream every chaos scenario sends.

``build_stream`` draws ``events`` unique events from the publisher's Scenario with
``occurred_at`` in the 6 hours before ``now_ms`` (so nothing is too late or in the
future whenever the run happens), groups them per trust into 500-event EncounterBatch
messages keyed by the trust (as the producer library does), and mixes in a seeded ~1%
of invalid messages: bytes that are not Avro at all, and single events dated a day
ahead. Batch ids come from the seed too, so one seed gives the same bytes every time.

``poison_candidates`` makes the poison scenario's extra messages: random bytes and
mutations of valid messages (truncated, header bytes changed, every event's id or
trust broken). Which of them are really poison is decided by the oracle, not assumed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from random import Random
from typing import Any

from gapwatch.adapters.avro_codec import AvroCodec
from gapwatch.publisher.scenario import Scenario, ScenarioConfig
from gapwatch.publisher.world import ScenarioData

__all__ = ["Msg", "Stream", "build_stream", "poison_candidates"]

EVENTS_PER_MESSAGE = 500
SPAN_DAYS = 0.25
"""Events occur in the 6 hours before the stream's ``now_ms``."""
INVALID_EVERY = 100
"""One invalid message per 100 valid ones (at least 4): dead letters in every scenario."""
FUTURE_MS = 86_400_000
"""An invalid event is dated one day ahead: beyond any clock skew the worker allows."""


@dataclass(frozen=True, slots=True)
class Msg:
    key: bytes
    value: bytes
    events: int
    """Events the worker reads from it (a message that does not decode counts as one)."""
    counted: int
    """Events that count the first time this message is read: all of a valid message's,
    none of an invalid one's (the rest are dead-lettered)."""
    kind: str
    """valid, undecodable, future, or a poison kind."""

    @property
    def dead(self) -> int:
        return self.events - self.counted


@dataclass(frozen=True, slots=True)
class Stream:
    messages: tuple[Msg, ...]
    now_ms: int
    seed: int

    @property
    def valid(self) -> list[Msg]:
        return [m for m in self.messages if m.kind == "valid"]

    @property
    def events(self) -> int:
        return sum(m.events for m in self.messages)


def _batches(events: Iterable[Mapping[str, Any]]) -> Iterable[list[Mapping[str, Any]]]:
    """Per-trust batches of EVENTS_PER_MESSAGE in the order they fill, then remainders."""
    buffers: dict[str, list[Mapping[str, Any]]] = {}
    for event in events:
        buffer = buffers.setdefault(str(event["provider_code"]), [])
        buffer.append(event)
        if len(buffer) == EVENTS_PER_MESSAGE:
            yield buffers.pop(str(event["provider_code"]))
    yield from buffers.values()


def _uuid(rng: Random) -> str:
    h = f"{rng.getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:]}"


def build_stream(
    codec: AvroCodec, data: ScenarioData, *, events: int, seed: int, now_ms: int
) -> Stream:
    scenario = Scenario(data, ScenarioConfig(seed=seed))
    rng = Random(seed)
    drawn = list(scenario.backfill(events, SPAN_DAYS, now_ms))
    if len({e["event_id"] for e in drawn}) != len(drawn):
        raise ValueError(f"seed {seed} drew a repeated event_id: the stream would not be unique")
    messages = [
        Msg(
            str(b[0]["provider_code"]).encode(),
            codec.encode_batch(b, _uuid(rng)),
            len(b),
            len(b),
            "valid",
        )
        for b in _batches(drawn)
    ]
    invalid = max(4, len(messages) // INVALID_EVERY)
    for i in range(invalid):
        if i % 2:
            event = {**drawn[rng.randrange(len(drawn))], "event_id": _uuid(rng)}
            event["occurred_at"] = now_ms + FUTURE_MS
            msg = Msg(event["provider_code"].encode(), codec.encode_event(event), 1, 0, "future")
        else:
            # 0xff is not the Confluent magic byte 0: undecodable whatever follows.
            junk = b"\xff" + rng.randbytes(rng.randrange(4, 200))
            msg = Msg(f"junk-{i}".encode(), junk, 1, 0, "undecodable")
        messages.insert(rng.randrange(len(messages) + 1), msg)
    return Stream(tuple(messages), now_ms, seed)


def poison_candidates(codec: AvroCodec, valid: Sequence[Msg], rng: Random, count: int) -> list[Msg]:
    """``count`` messages meant to be dead-lettered whole; ``counted`` is 0 for all of
    them and ``events`` a guess the oracle corrects (see ``Oracle.poison``)."""
    out: list[Msg] = []
    for i in range(count):
        source = valid[rng.randrange(len(valid))]
        kind = ("random_bytes", "truncated", "bad_schema_id", "bad_event_ids", "bad_trusts")[i % 5]
        value = source.value
        if kind == "random_bytes":
            value = rng.randbytes(rng.randrange(8, 300))  # 8+ bytes: no two alike
        elif kind == "truncated":
            value = value[: rng.randrange(5, len(value) - 1)]
        elif kind == "bad_schema_id":
            value = b"\x00" + rng.randrange(1000, 2**31).to_bytes(4, "big") + value[5:]
        else:
            records = codec.decode(value).events
            field, broken = (
                ("event_id", "not-a-uuid") if kind == "bad_event_ids" else ("provider_code", "")
            )
            value = codec.encode_batch([{**r, field: broken} for r in records], _uuid(rng))
        out.append(replace(source, value=value, counted=0, kind=kind))
    return out
