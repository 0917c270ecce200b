"""No identifiers at rest: after a realistic run through the real broker (Tansu), the
ingest worker and the real Redis, no NHS number or postcode is in any Redis key or
value of the run's namespace, or in any dead letter's key or headers.

The run publishes thousands of synthetic scenario events. Many give residence as a
real postcode from the reference lookup, in the forms trusts write them, and others
are pseudonymised from NHS numbers by the producer library. It adds bad events, sent
with a hand-built producer because the library refuses them: NHS numbers and postcodes
in fields not meant for them, alone and inside batches, and malformed ids that hold
one inside (the rejection quotes them, redacted). It also sends undecodable messages
whose bytes hold both. The scanner is tried on a planted identifier first, so a clean
result means something.
"""

from __future__ import annotations

import asyncio
import csv
import dataclasses
import gzip
import random
import re
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition

from gapwatch.adapters.avro_codec import AvroCodec
from gapwatch.adapters.kafka_admin import ensure_topics
from gapwatch.adapters.redis_store import RedisStore
from gapwatch.adapters.refdata_files import FILES, load_reference_data
from gapwatch.core.identifiers import identifier_kind
from gapwatch.core.refdata import ReferenceData, normalise_postcode
from gapwatch.core.windows import DAY_MS
from gapwatch.devstack.processes import log_tail, spawn
from gapwatch.devstack.services import ManagedProcess, isolated_env
from gapwatch.publisher import (
    EncounterProducer,
    ProducerOptions,
    Pseudonymiser,
    RefusedEvent,
    Scenario,
    ScenarioConfig,
    load_scenario_data,
)
from gapwatch.settings import KafkaSettings

pytestmark = pytest.mark.integration

PARTITIONS = 4
SCENARIO_EVENTS = 3_000
POSTCODE_SHARE = 0.4
PSEUDONYMISED_EVENTS = 600
TRUST_KEY = b"trust-side person-key secret for this test only!"
SEED = 20_260_701
"""Fixed, so a failure can be replayed; the only other input is the clock."""


def _nhs_number(rng: random.Random) -> str:
    while True:
        prefix = f"{rng.randrange(10**9):09d}"
        total = sum(int(d) * w for d, w in zip(prefix, range(10, 1, -1), strict=True))
        check = (11 - total % 11) % 11
        if check != 10:
            return prefix + str(check)


def _written(digits: str, rng: random.Random) -> str:
    """An NHS number as a trust's system might write it."""
    return rng.choice(
        [
            digits,
            f"{digits[:3]} {digits[3:6]} {digits[6:]}",
            f"{digits[:3]}-{digits[3:6]}-{digits[6:]}",
        ]
    )


def _postcode_form(postcode: str, rng: random.Random) -> str:
    compact = postcode.replace(" ", "")
    return rng.choice([postcode, compact, postcode.lower(), f" {postcode[:-3]}  {postcode[-3:]} "])


class Inserted:
    """Every identifier the run put into events, in normalised forms, for literal search."""

    def __init__(self) -> None:
        self.nhs: set[str] = set()
        self.postcodes: set[str] = set()
        """Compact and upper-case: matched against text stripped the same way."""

    def add_postcode(self, raw: str) -> None:
        self.postcodes.add("".join(raw.split()).upper())


_TOKEN_SEPARATORS = re.compile(r"[|:/,;={}()\[\]\"'\x00]+")


def _findings(text: str, inserted: Inserted) -> list[str]:
    """What in ``text`` is an identifier: the whole text, any token or run of two or
    three tokens (a written NHS number or postcode may be split by spaces) by the
    detector, or any inserted value as a substring once spaces and hyphens are out."""
    found: list[str] = []
    tokens = [t for part in _TOKEN_SEPARATORS.split(text) for t in part.split()]
    candidates = [text, *tokens]
    candidates += [" ".join(tokens[i : i + n]) for n in (2, 3) for i in range(len(tokens))]
    found += [f"{identifier_kind(c)}: {c!r}" for c in candidates if identifier_kind(c)]
    digits = text.replace(" ", "").replace("-", "")
    found += [f"inserted NHS number {n}" for n in _windows(digits, (10,)) & inserted.nhs]
    letters = "".join(text.split()).upper()
    found += [f"inserted postcode {p}" for p in _windows(letters, (5, 6, 7)) & inserted.postcodes]
    return found


def _windows(text: str, sizes: tuple[int, ...]) -> set[str]:
    return {text[i : i + n] for n in sizes for i in range(len(text) - n + 1)}


def _text(value: bytes | str | float) -> str:
    if isinstance(value, bytes):
        return value.decode("latin-1")
    return str(value)


def _redis_items(client: Any, key: bytes) -> Iterator[bytes | str | float]:
    """The key's name and everything stored under it, whatever its type (``client`` is
    a bytes-mode ``redis.Redis``; its return types are too loose to narrow usefully)."""
    yield key
    kind = client.type(key)
    if kind == b"string":
        yield client.get(key) or b""
    elif kind == b"hash":
        for field, value in client.hgetall(key).items():
            yield field
            yield value
    elif kind == b"set":
        yield from client.smembers(key)
    elif kind == b"zset":
        for member, score in client.zrange(key, 0, -1, withscores=True):
            yield member
            yield score
    elif kind == b"list":
        yield from client.lrange(key, 0, -1)
    elif kind == b"stream":
        for entry_id, fields in client.xrange(key):
            yield entry_id
            for field, value in fields.items():
                yield field
                yield value
    else:
        raise AssertionError(f"key {key!r} has a type the scan does not read: {kind!r}")


def _scan_redis(client: Any, namespace: str, inserted: Inserted) -> tuple[int, list[str]]:
    keys = 0
    found: list[str] = []
    for prefix in ("gw", "gwa"):
        for key in client.scan_iter(match=f"{prefix}:{{{namespace}}}:*", count=1000):
            keys += 1
            for item in _redis_items(client, key):
                found += [f"{key!r}: {f}" for f in _findings(_text(item), inserted)]
    return keys, found


def _read_topic(bootstrap: str, topic: str, partitions: int) -> list[Message]:
    """Every message of ``topic``, read to the end of every partition."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"scan-{uuid.uuid4().hex[:8]}",
            "enable.partition.eof": True,
            "enable.auto.commit": False,
        }
    )
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    messages: list[Message] = []
    at_end: set[int] = set()
    deadline = time.monotonic() + 30
    try:
        while len(at_end) < partitions:
            assert time.monotonic() < deadline, f"{topic}: no EOF from some partitions"
            for msg in consumer.consume(500, timeout=0.2):
                error = msg.error()
                if error is None:
                    messages.append(msg)
                elif error.code() == KafkaError._PARTITION_EOF:
                    at_end.add(msg.partition() or 0)
                else:
                    raise AssertionError(str(error))
    finally:
        consumer.close()
    return messages


def _lookup_postcodes(refdata_dir: Path) -> list[str]:
    with gzip.open(refdata_dir / FILES["postcodes"], "rt", newline="", encoding="utf-8") as f:
        return sorted(row["postcode"] for row in csv.DictReader(f))


def _bad_events(
    good: list[dict[str, Any]], rng: random.Random, postcodes: list[str], inserted: Inserted
) -> list[tuple[dict[str, Any], str]]:
    """Events with an identifier where it must not be, and the detail expected for each."""
    bad: list[tuple[dict[str, Any], str]] = []
    nhs_fields = ["person_key", "person_key", "site_code", "provider_code", "event_id"]
    nhs_fields += ["postcode", "ethnic_category", "lsoa_code", "admission_method"]
    for i, field in enumerate(nhs_fields * 4):
        digits = _nhs_number(rng)
        inserted.nhs.add(digits)
        bad.append(({**good[i], field: _written(digits, rng)}, f"nhs_number in {field}"))
    postcode_fields = ["lsoa_code", "site_code", "person_key", "provider_code", "sex"]
    for i, field in enumerate(postcode_fields * 4, start=len(bad)):
        raw = _postcode_form(rng.choice(postcodes), rng)
        if field == "provider_code":
            raw = raw.replace(" ", "").upper()  # ODS-code shaped: passes the ODS check
        inserted.add_postcode(raw)
        bad.append(({**good[i], field: raw}, f"postcode in {field}"))
    return bad


def _echoed_events(
    good: list[dict[str, Any]], rng: random.Random, postcodes: list[str], inserted: Inserted
) -> list[dict[str, Any]]:
    """Events whose malformed event_id or provider_code holds an identifier inside a
    longer value: invalid, and the rejection quotes the value, redacted."""
    echoed = []
    for i, field in enumerate(["event_id", "provider_code"] * 2):
        digits = _nhs_number(rng)
        postcode = rng.choice(postcodes)
        inserted.nhs.add(digits)
        inserted.add_postcode(postcode)
        value = f"x{digits}" if i < 2 else f"R0A {postcode}"
        echoed.append({**good[i], field: value})
    return echoed


def _wait_until_all_consumed(
    client: Any, namespace: str, expected: int, worker: ManagedProcess
) -> dict[str, int]:
    deadline = time.monotonic() + 180
    totals: dict[str, int] = {}
    while time.monotonic() < deadline:
        assert worker.process.poll() is None, f"worker died:\n{log_tail(worker)}"
        tally = client.hgetall(f"gw:{{{namespace}}}:tally")
        totals = Counter()
        for name, value in tally.items():
            totals[name.decode().rsplit(":", 1)[1]] += int(value)
        if totals["consumed"] >= expected:
            return dict(totals)
        time.sleep(0.5)
    raise AssertionError(f"only {totals} of {expected} events consumed:\n{log_tail(worker)}")


@dataclasses.dataclass
class Run:
    """What was published, by what it should become."""

    inserted: Inserted = dataclasses.field(default_factory=Inserted)
    counted: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    """Good events: scenario (many by postcode), pseudonymised, companions in batches."""
    bad: list[tuple[dict[str, Any], str]] = dataclasses.field(default_factory=list)
    """Events with a misplaced identifier, and the rejection detail expected."""
    echoed: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    undecodable: list[bytes] = dataclasses.field(default_factory=list)

    @property
    def dead_lettered(self) -> int:
        return len(self.bad) + len(self.echoed) + len(self.undecodable)


def _publish(kafka: KafkaSettings, codec: AvroCodec, refdata_dir: Path, now: int) -> Run:
    rng = random.Random(SEED)
    run = Run()
    postcodes = _lookup_postcodes(refdata_dir)
    # Realistic good events: Greater Manchester residents, many by postcode.
    scenario = Scenario(
        load_scenario_data(refdata_dir), ScenarioConfig(seed=SEED, icbs=frozenset({"QOP"}))
    )
    events = list(scenario.backfill(SCENARIO_EVENTS + PSEUDONYMISED_EVENTS + 200, 1, now))
    for event in events[:SCENARIO_EVENTS]:
        if rng.random() < POSTCODE_SHARE:
            raw = _postcode_form(rng.choice(postcodes), rng)
            run.inserted.add_postcode(raw)
            event.update(lsoa_code=None, lsoa_vintage=None, postcode=raw)
    by_nhs = events[SCENARIO_EVENTS : SCENARIO_EVENTS + PSEUDONYMISED_EVENTS]
    for event in by_nhs:
        digits = _nhs_number(rng)
        run.inserted.nhs.add(digits)
        del event["person_key"]
        event["nhs_number"] = _written(digits, rng)
    run.bad = _bad_events(events[-200:], rng, postcodes, run.inserted)
    run.echoed = _echoed_events(events[-100:], rng, postcodes, run.inserted)

    library = EncounterProducer(
        kafka,
        codec,
        ProducerOptions(events_per_message=100, linger_ms=5),
        pseudonymiser=Pseudonymiser(TRUST_KEY),
    )
    for event, _ in run.bad:  # the library refuses every one of them
        with pytest.raises(RefusedEvent):
            library.send(event)
    library.send_many(events[: SCENARIO_EVENTS + PSEUDONYMISED_EVENTS])
    assert library.flush(30).events_delivered == SCENARIO_EVENTS + PSEUDONYMISED_EVENTS
    run.counted = events[: SCENARIO_EVENTS + PSEUDONYMISED_EVENTS]

    # The rest by hand: bad events half alone, half inside batches with a good event.
    raw_producer = Producer({"bootstrap.servers": kafka.bootstrap, "linger.ms": 5})
    for i, (event, _) in enumerate(run.bad):
        payload = codec.encode_event(event)
        if i % 2:
            companion = scenario.event(now - 60_000)
            run.counted.append(companion)
            payload = codec.encode_batch([companion, event])
        raw_producer.produce(kafka.topic, payload, key=b"R0A")
    for event in run.echoed:
        raw_producer.produce(kafka.topic, codec.encode_event(event), key=b"R0A")
    run.undecodable = [
        b"\x00\x00\x00\x00\x01" + b"943 476 5919 lives at M15 4AB",
        b"\x00\x00\x00\x00\x01" + b"4010232137 lives at m154ab",
        b"not avro: nhs 9434765919 postcode M15 4AB",
    ]
    run.inserted.nhs |= {"9434765919", "4010232137"}
    run.inserted.add_postcode("M15 4AB")
    for payload in run.undecodable:
        raw_producer.produce(kafka.topic, payload, key=b"R0A")
    assert raw_producer.flush(15) == 0
    return run


def _check_dead_letters(run: Run, letters: list[Message]) -> None:
    """No identifier in any letter's key or headers, and each letter says why."""
    details: Counter[tuple[str, str]] = Counter()
    for msg in letters:
        listed = msg.headers() or []
        pairs = listed.items() if isinstance(listed, dict) else listed
        headers = {name: _text(value or b"") for name, value in pairs}
        for text in [_text(msg.key() or b""), *headers, *headers.values()]:
            assert _findings(text, run.inserted) == [], (headers, text)
        details[(headers["gapwatch.reason"], headers["gapwatch.error_detail"])] += 1
    assert len(letters) == run.dead_lettered
    # Every bad event: identifier_in_field, naming the field and the kind.
    expected = Counter(("identifier_in_field", detail) for _, detail in run.bad)
    assert {k: v for k, v in details.items() if k[0] == "identifier_in_field"} == expected
    # Ids holding one inside: invalid, quoted, redacted.
    quoted = [d for (why, d), n in details.items() for _ in range(n) if why == "invalid_field"]
    assert len(quoted) == len(run.echoed)
    assert all("<nhs>" in d or "<pc>" in d for d in quoted), quoted
    others = {reason for reason, _ in details} - {"identifier_in_field", "invalid_field"}
    assert others <= {"undecodable", "unknown_schema_id"}


def _lsoa_arrivals(redis_url: str, namespace: str, now: int) -> dict[str, int]:
    async def read() -> dict[str, int]:
        store = RedisStore.from_url(redis_url, namespace)
        try:
            days = [now - now % DAY_MS - DAY_MS * i for i in range(3)]
            return await store.lsoa_counts("QOP", days, "ed_arrival")
        finally:
            await store.close()

    return asyncio.run(read())


def _expected_arrivals(run: Run, ref: ReferenceData) -> Counter[str]:
    """ED arrivals per LSOA 2021 of residence, resolving postcodes as enrichment does."""
    arrivals: Counter[str] = Counter()
    for event in run.counted:
        if event["event_type"] != "ed_arrival":
            continue
        code = event["lsoa_code"] or ref.postcodes.get(normalise_postcode(event["postcode"] or ""))
        area = ref.areas.get(code or "")
        if area is not None and area.icb == "QOP":
            arrivals[area.lsoa21] += 1
    return arrivals


def test_no_nhs_number_or_postcode_is_stored_or_put_in_dead_letter_headers(
    broker: str,
    redis_url: str,
    namespace: str,
    real_refdata_dir: Path,
    codec: AvroCodec,
    tmp_path: Path,
) -> None:
    env = isolated_env(broker, redis_url, namespace, tmp_path, partitions=PARTITIONS)
    kafka = KafkaSettings(
        bootstrap=broker,
        topic=env["GAPWATCH_KAFKA_TOPIC"],
        dlq_topic=env["GAPWATCH_KAFKA_DLQ_TOPIC"],
        alerts_topic=env["GAPWATCH_KAFKA_ALERTS_TOPIC"],
        partitions=PARTITIONS,
    )
    ensure_topics(kafka)
    now = time.time_ns() // 1_000_000
    run = _publish(kafka, codec, real_refdata_dir, now)
    published = len(run.counted) + run.dead_lettered

    worker = spawn("ingest", [sys.executable, "-m", "gapwatch", "ingest"], env, tmp_path / "logs")
    client = redis.Redis.from_url(redis_url)
    try:
        totals = _wait_until_all_consumed(client, namespace, published, worker)
    finally:
        worker.stop()

    # The scanner finds a planted identifier, in a string and in a hash field...
    planted = f"gw:{{{namespace}}}:scratch"
    client.set(planted, "patient 943 476 5919")
    client.hset(planted + ":h", "lives at m15 4ab", 1)
    _, seen = _scan_redis(client, namespace, run.inserted)
    assert any("scratch'" in f and "NHS" in f for f in seen), seen
    assert any("scratch:h'" in f and "postcode" in f for f in seen), seen
    client.delete(planted, planted + ":h")
    # ...and nothing in what the run stored,
    keys, found = _scan_redis(client, namespace, run.inserted)
    assert keys > 50
    assert found == []
    # nor in the dead letters' keys and headers,
    letters = _read_topic(broker, kafka.dlq_topic, PARTITIONS)
    _check_dead_letters(run, letters)
    # nor in the worker's own log.
    for line in worker.log_path.read_text(errors="replace").splitlines():
        assert [f for f in _findings(line, run.inserted) if f.startswith("inserted")] == [], line

    assert totals["consumed"] == published
    assert (totals["counted"], totals["dead_lettered"]) == (len(run.counted), run.dead_lettered)
    # Postcodes did resolve: per-LSOA arrivals are what the events' residence gives.
    ref = load_reference_data(real_refdata_dir, with_population=False)
    assert _lsoa_arrivals(redis_url, namespace, now) == _expected_arrivals(run, ref)

    by_postcode = sum(1 for e in run.counted if e.get("postcode"))
    print(
        f"\nidentifier scan: published {published} events ({len(run.counted)} good, "
        f"{by_postcode} of them by postcode, {PSEUDONYMISED_EVENTS} pseudonymised; "
        f"{len(run.bad)} misplaced identifiers, {len(run.echoed)} ids quoting one, "
        f"{len(run.undecodable)} undecodable); counted {totals['counted']}, "
        f"dead-lettered {totals['dead_lettered']}; Redis keys scanned {keys}; "
        f"DLQ messages scanned {len(letters)}"
    )
