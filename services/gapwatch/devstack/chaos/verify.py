"""Compare what Redis holds with what it must hold, and count every difference.

mismatches = (bucket, field) pairs whose count differs from the oracle's
           + partitions that fail reconciliation (consumed != counted + duplicates +
             dead_lettered, or tallies without an offset) in Redis
           + for each tally kind (messages, consumed, counted, duplicates, dead_lettered):
             the sum over partitions of |Redis - expected from the topic's content|
           + partitions whose stored next offset is not the end of the partition
           + acknowledged messages missing from the topic, and messages in it never sent
           + |distinct dead-letter sources in the DLQ - expected dead letters|
           + failed scenario checks (e.g. the API did not answer 503 within 3 s)
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import redis

from gapwatch.core.counting import BucketKey
from gapwatch.core.reconcile import KINDS, balances
from gapwatch.devstack.chaos.readback import DeadLetterCount, TopicContent

__all__ = ["RedisView", "Verdict", "read_redis", "verdict"]


@dataclass(frozen=True, slots=True)
class RedisView:
    tallies: dict[str, int]
    offsets: dict[str, int]
    counts: dict[BucketKey, dict[str, int]]

    def tally(self, topic: str, kind: str) -> int:
        prefix, suffix = f"{topic}:", f":{kind}"
        return sum(
            v for k, v in self.tallies.items() if k.startswith(prefix) and k.endswith(suffix)
        )


@dataclass(slots=True)
class Verdict:
    bucket_fields: int = 0
    unbalanced_partitions: int = 0
    tally_differences: dict[str, int] = field(default_factory=dict)
    offsets_not_at_end: int = 0
    acked_but_lost: int = 0
    unknown_messages: int = 0
    dead_letter_difference: int = 0
    failed_checks: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return (
            self.bucket_fields
            + self.unbalanced_partitions
            + sum(self.tally_differences.values())
            + self.offsets_not_at_end
            + self.acked_but_lost
            + self.unknown_messages
            + self.dead_letter_difference
            + len(self.failed_checks)
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "bucket_fields": self.bucket_fields,
            "unbalanced_partitions": self.unbalanced_partitions,
            "tally_differences": self.tally_differences,
            "offsets_not_at_end": self.offsets_not_at_end,
            "acked_but_lost": self.acked_but_lost,
            "unknown_messages": self.unknown_messages,
            "dead_letter_difference": self.dead_letter_difference,
            "failed_checks": self.failed_checks,
        }


def _ints(raw: Mapping[Any, Any]) -> dict[str, int]:
    return {str(k): int(v) for k, v in raw.items()}


def read_redis(client: redis.Redis, namespace: str) -> RedisView:
    prefix = f"gw:{{{namespace}}}:"
    keys = sorted(str(k) for k in client.scan_iter(match=f"{prefix}c:*", count=1000))
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.hgetall(key)
    counts: dict[BucketKey, dict[str, int]] = {}
    for key, fields in zip(keys, pipe.execute(), strict=True):
        granularity, start, icb = key[len(prefix) + 2 :].split(":", 2)
        counts[(granularity, int(start), icb)] = _ints(fields)
    tallies: Any = client.hgetall(f"{prefix}tally")
    offsets: Any = client.hgetall(f"{prefix}offsets")
    return RedisView(_ints(tallies), _ints(offsets), counts)


def _bucket_fields(expected: Mapping[BucketKey, Counter[str]], view: RedisView) -> int:
    differing = 0
    for key in set(expected) | set(view.counts):
        want, got = expected.get(key, Counter()), view.counts.get(key, {})
        differing += sum(1 for f in set(want) | set(got) if want.get(f, 0) != got.get(f, 0))
    return differing


def verdict(
    topic: str,
    expected: Mapping[BucketKey, Counter[str]],
    content: TopicContent,
    view: RedisView,
    letters: DeadLetterCount,
    acked: frozenset[bytes],
    failed_checks: list[str],
) -> Verdict:
    v = Verdict(failed_checks=list(failed_checks))
    v.bucket_fields = _bucket_fields(expected, view)
    ours = {k: n for k, n in view.offsets.items() if k.startswith(f"{topic}:")}
    mine = {k: n for k, n in view.tallies.items() if k.startswith(f"{topic}:")}
    v.unbalanced_partitions = sum(1 for b in balances(mine, ours) if not b.balanced)
    tallies = content.tallies
    for kind in KINDS:
        v.tally_differences[kind] = sum(
            abs(mine.get(f"{topic}:{p}:{kind}", 0) - t[kind])
            for p, t in tallies.by_partition.items()
        )
    v.offsets_not_at_end = sum(
        1 for p, end in tallies.next_offset.items() if ours.get(f"{topic}:{p}") != end
    )
    v.acked_but_lost = len(acked - content.payloads)
    v.unknown_messages = tallies.unknown_messages
    v.dead_letter_difference = abs(letters.sources - tallies.total("dead_lettered"))
    if not content.complete:
        v.failed_checks.append("the topic could not be read to its end")
    if not letters.complete:
        v.failed_checks.append("the dead-letter topic could not be read to its end")
    return v
