"""The chaos harness's arithmetic, without servers: which tallies a topic's content
implies, and that every kind of difference between Redis and the truth is counted."""

from __future__ import annotations

from collections import Counter

from gapwatch.devstack.chaos.readback import DeadLetterCount, TopicContent, tallies_of
from gapwatch.devstack.chaos.stream import Msg
from gapwatch.devstack.chaos.verify import RedisView, verdict

TOPIC = "chaos-x.encounters"
VALID_A = Msg(b"R0A", b"batch-a", 3, 3, "valid")
VALID_B = Msg(b"RRK", b"batch-b", 2, 2, "valid")
JUNK = Msg(b"junk", b"\xffjunk", 1, 0, "undecodable")
SENT = {m.value: m for m in (VALID_A, VALID_B, JUNK)}
EXPECTED = {("h", 0, "QOP"): Counter({"events|all|all": 5}), ("d", 0, "QOP"): Counter({"x": 2})}


def _content(stored: list[tuple[int, int, bytes]]) -> TopicContent:
    return TopicContent(tallies_of(stored, SENT), frozenset(p for _, _, p in stored), True)


def _view(tallies: dict[str, int], offsets: dict[str, int], counts=None) -> RedisView:
    if counts is None:
        counts = {k: dict(v) for k, v in EXPECTED.items()}
    return RedisView(tallies, offsets, counts)


def _tallies(partition: int, **kinds: int) -> dict[str, int]:
    base = dict.fromkeys(("messages", "consumed", "counted", "duplicates", "dead_lettered"), 0)
    return {f"{TOPIC}:{partition}:{k}": v for k, v in {**base, **kinds}.items()}


# Partition 0 holds A, a re-sent copy of A and the junk twice; partition 1 holds B.
STORED = [(0, 0, b"batch-a"), (0, 1, b"\xffjunk"), (0, 2, b"batch-a"), (0, 3, b"\xffjunk")]
STORED += [(1, 0, b"batch-b")]
RIGHT = {
    **_tallies(0, messages=4, consumed=8, counted=3, duplicates=3, dead_lettered=2),
    **_tallies(1, messages=1, consumed=2, counted=2),
}
OFFSETS = {f"{TOPIC}:0": 4, f"{TOPIC}:1": 1}
LETTERS = DeadLetterCount(messages=3, sources=2, complete=True)


def test_the_first_copy_counts_later_copies_are_duplicates_and_junk_is_dead_every_time():
    tallies = tallies_of(list(reversed(STORED)), SENT).by_partition
    assert tallies[0] == {
        "messages": 4,
        "consumed": 8,
        "counted": 3,
        "duplicates": 3,
        "dead_lettered": 2,
    }
    assert tallies[1]["counted"] == 2


def _total(**changes) -> int:
    args = {
        "content": _content(STORED),
        "view": _view(RIGHT, OFFSETS),
        "letters": LETTERS,
        "acked": frozenset({b"batch-a", b"batch-b", b"\xffjunk"}),
    }
    args.update(changes)
    v = verdict(TOPIC, EXPECTED, args["content"], args["view"], args["letters"], args["acked"], [])
    return v.total


def test_redis_holding_exactly_the_truth_has_no_mismatch():
    assert _total() == 0


def test_a_bucket_field_off_by_one_is_one_mismatch():
    counts = {k: dict(v) for k, v in EXPECTED.items()}
    counts[("h", 0, "QOP")]["events|all|all"] += 1
    assert _total(view=_view(RIGHT, OFFSETS, counts)) == 1


def test_a_bucket_missing_from_redis_counts_each_of_its_fields():
    counts = {("h", 0, "QOP"): dict(EXPECTED[("h", 0, "QOP")])}
    assert _total(view=_view(RIGHT, OFFSETS, counts)) == 1


def test_a_duplicate_counted_twice_shows_in_counted_duplicates_and_reconciliation():
    wrong = {**RIGHT, f"{TOPIC}:0:counted": 6, f"{TOPIC}:0:duplicates": 0}
    # counted +3 and duplicates -3 against the topic; the partition still balances.
    assert _total(view=_view(wrong, OFFSETS)) == 6


def test_an_unbalanced_partition_and_a_short_offset_are_mismatches():
    wrong = {**RIGHT, f"{TOPIC}:1:consumed": 3}
    assert _total(view=_view(wrong, OFFSETS)) == 1 + 1  # consumed diff + unbalanced
    assert _total(view=_view(RIGHT, {**OFFSETS, f"{TOPIC}:0": 3})) == 1


def test_an_acknowledged_message_missing_from_the_topic_is_lost():
    assert _total(acked=frozenset({b"batch-a", b"batch-b", b"\xffjunk", b"gone"})) == 1


def test_dead_letters_are_compared_by_distinct_source():
    assert _total(letters=DeadLetterCount(messages=9, sources=2, complete=True)) == 0
    assert _total(letters=DeadLetterCount(messages=1, sources=1, complete=True)) == 1
    assert _total(letters=DeadLetterCount(messages=2, sources=2, complete=False)) == 1
