"""Expected counts, computed in this process and independently of the running system.

The oracle runs gapwatch's ``ChunkProcessor`` over the stream's *unique* messages once,
in order, at the stream's fixed ``now_ms``: no Kafka, no Redis, no worker, no faults.
What it returns is what Redis must hold after any scenario, however often messages were
redelivered, replayed or re-sent. ``now_ms`` may be fixed because every valid event lies
in the 6 hours before it (never too late, never in the future, always in an hour bucket
for the 8 days that follow) and every invalid one stays invalid later too.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import replace

from gapwatch.adapters.avro_codec import AvroCodec
from gapwatch.core.counting import BucketKey
from gapwatch.core.refdata import ReferenceData
from gapwatch.core.validation import Limits
from gapwatch.core.windows import DAY_MS
from gapwatch.devstack.chaos.stream import Msg, Stream
from gapwatch.ingest.dedup import SeenIds
from gapwatch.ingest.processor import ChunkProcessor, ChunkResult, InMessage
from gapwatch.settings import IngestSettings

__all__ = ["Oracle"]

CHUNK = 200
"""Messages per ``process`` call, as the worker's chunks (memory stays bounded)."""

Deltas = dict[BucketKey, Counter[str]]


class Oracle:
    def __init__(self, codec: AvroCodec, ref: ReferenceData, ingest: IngestSettings) -> None:
        self._codec = codec
        self._ref = ref
        self._ingest = ingest

    def _processor(self) -> ChunkProcessor:
        ing = self._ingest
        limits = Limits(ing.day_retention_days * DAY_MS, ing.future_skew_s * 1000)
        hour_ms = ing.hour_retention_days * DAY_MS
        return ChunkProcessor(self._codec, self._ref, limits, hour_ms, SeenIds(hour_ms))

    def _run(self, messages: Sequence[Msg], now_ms: int) -> list[ChunkResult]:
        processor = self._processor()
        results = []
        for start in range(0, len(messages), CHUNK):
            chunk = [
                InMessage(0, start + i, now_ms, m.value, m.key)
                for i, m in enumerate(messages[start : start + CHUNK])
            ]
            results.append(processor.process(chunk, now_ms))
        return results

    def expected_counts(self, stream: Stream) -> Deltas:
        """Bucket key -> field -> count for the stream's unique messages; raises if the
        stream is not what it claims (a valid event dead-lettered, an invalid one counted)."""
        totals: Deltas = {}
        counted = dead = 0
        for result in self._run(stream.messages, stream.now_ms):
            counted += result.counted
            dead += len(result.dead_letters)
            for key, fields in result.deltas.items():
                totals.setdefault(key, Counter()).update(fields)
        want_counted = sum(m.counted for m in stream.messages)
        want_dead = sum(m.dead for m in stream.messages)
        if (counted, dead) != (want_counted, want_dead):
            raise ValueError(
                f"stream seed {stream.seed}: the processor counted {counted} and dead-lettered "
                f"{dead}; the stream says {want_counted} and {want_dead}"
            )
        return totals

    def poison(self, candidates: Sequence[Msg], now_ms: int) -> list[Msg]:
        """The candidates the processor dead-letters whole, with their real event count
        (a mutated batch can still hold countable events: those are dropped)."""
        kept = []
        for msg in candidates:
            (result,) = self._run([msg], now_ms)
            tally = result.partitions[0]
            if tally.counted == 0 and tally.dead_lettered == tally.consumed:
                kept.append(replace(msg, events=tally.consumed, counted=0))
        return kept
