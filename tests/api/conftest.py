"""An in-memory store and a test client for API tests (no Redis, fixed clock)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pytest
from fastapi.testclient import TestClient

from gapwatch.api.app import create_app
from gapwatch.core.counting import LSOA_DAY, CountAccumulator, lsoa_field, with_england
from gapwatch.core.enrich import Profile
from gapwatch.core.errors import TransientError
from gapwatch.core.ports import FreshnessRow
from gapwatch.core.windows import DAY_MS, HOUR_MS, Bucket
from gapwatch.settings import Settings
from tests.tokens import national_headers

NOW = 20_000 * DAY_MS + 10 * HOUR_MS + 30 * 60_000  # 10:30 on a day
NOW_S = NOW // 1000
NATIONAL = national_headers(now_s=NOW_S)
"""A national token valid at the apps' fixed clock (tokens are checked against it)."""


class MemoryStore:
    def __init__(self) -> None:
        self.buckets: dict[tuple[str, int, str], Mapping[str, int]] = {}
        self.versions_by_icb: dict[str, int] = {}
        self.down = False

    def add(self, occurred_ms: int, profile: Profile, measures: tuple[str, ...]) -> None:
        acc = CountAccumulator.empty(hour_cutoff_ms=0)
        acc.add(occurred_ms, profile, measures)
        for key, fields in with_england(acc.deltas()).items():
            merged = dict(self.buckets.get(key, {}))
            for name, n in fields.items():
                merged[name] = merged.get(name, 0) + n
            self.buckets[key] = merged
            self.versions_by_icb[key[2]] = self.versions_by_icb.get(key[2], 0) + 1

    async def versions(self) -> dict[str, str]:
        if self.down:
            raise TransientError("redis unavailable: connection refused")
        return {icb: str(v) for icb, v in self.versions_by_icb.items()}

    async def sum_counts(self, icbs: Sequence[str], buckets: Sequence[Bucket]) -> dict[str, int]:
        if self.down:
            raise TransientError("redis unavailable: connection refused")
        out: dict[str, int] = {}
        for icb in icbs:
            for b in buckets:
                for name, n in self.buckets.get((b.granularity, b.start_ms, icb), {}).items():
                    out[name] = out.get(name, 0) + n
        return out

    async def lsoa_counts(
        self, icb: str, day_starts: Sequence[int], measure: str
    ) -> dict[str, int]:
        if self.down:
            raise TransientError("redis unavailable: connection refused")
        prefix = lsoa_field(measure, "")
        out: dict[str, int] = {}
        for day in day_starts:
            for name, n in self.buckets.get((LSOA_DAY, day, icb), {}).items():
                if name.startswith(prefix):
                    out[name[len(prefix) :]] = out.get(name[len(prefix) :], 0) + n
        return out

    async def freshness(self, now_ms: int) -> Mapping[str, FreshnessRow]:
        return {"R0A": FreshnessRow("R0A", now_ms - 30_000, now_ms - 1_000, 12)}

    async def ping(self) -> bool:
        return not self.down


class DayRows:
    """A day-bucket reader (core.ports.DayReader) over ``rows``: (ICB, day start ms) ->
    the values of the fields asked for (period_gaps.GAP_FIELDS), 0 where absent."""

    def __init__(self, rows: dict[tuple[str, int], list[int]]) -> None:
        self.rows = rows

    async def day_versions(self) -> dict[tuple[str, int], str]:
        return dict.fromkeys(self.rows, "v1")

    async def day_versions_of(self, icb: str, days: Sequence[int]) -> dict[tuple[str, int], str]:
        return {(icb, d): "v1" for d in days if (icb, d) in self.rows}

    async def read_day_fields(
        self, buckets: Sequence[tuple[str, int]], fields: Sequence[str]
    ) -> list[list[int]]:
        return [self.rows.get(b, [0] * len(fields)) for b in buckets]


@pytest.fixture()
def store() -> MemoryStore:
    return MemoryStore()


@pytest.fixture()
def client(store: MemoryStore, tiny_ref) -> TestClient:
    app = create_app(
        Settings(api={"versions_max_age_ms": 0}),
        store,
        tiny_ref,
        clock_ms=lambda: NOW,
        broker_check=lambda: True,
    )
    return TestClient(app, headers=NATIONAL)


def profile(q: str, eth: str = "white", sex: str = "female") -> Profile:
    return Profile("QOP", q, str(2 * int(q)), eth, "18-39", sex, ())
