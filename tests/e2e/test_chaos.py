"""The chaos harness's combined scenario in ``make test``: 100,000 events through real
Tansu, a private redis-server and ``gapwatch ingest`` processes, with the worker killed
(SIGKILL) twice and then Redis restarted empty while the stream arrives, then 10% of the
messages re-sent. Every count in Redis must equal the in-process oracle's
(docs/chaos.md); ``make chaos`` runs every scenario on 1,000,000 events."""

from __future__ import annotations

import pytest

from gapwatch.devstack.chaos import run_chaos
from gapwatch.devstack.chaos.report import as_table
from gapwatch.settings import RefdataSettings, Settings

pytestmark = pytest.mark.integration

EVENTS = 100_000
RATE = 3_000
"""Events/s offered: the stream takes ~33 s to arrive, long enough that the three faults
(and the ~6 s each kill takes to recover from) all land while it does."""


def test_counts_stay_exact_through_sigkills_a_redis_flush_and_a_replay(real_refdata_dir, tmp_path):
    settings = Settings(refdata=RefdataSettings(dir=real_refdata_dir))
    report = run_chaos(
        settings, events=EVENTS, seed=7, scenarios=["combined"], rate=RATE, work=tmp_path
    )
    (row,) = report.rows
    table = as_table(report)
    assert "error" not in row.detail, table
    assert [r["fault"] for r in row.detail["recoveries"]] == ["sigkill", "sigkill", "redis_flush"]
    assert row.mismatches == 0, table
    assert row.counted == EVENTS
    assert row.duplicates == row.detail["replayed_events"] > 0
    assert row.dead_lettered > 0
    assert all(r["seconds"] is not None for r in row.detail["recoveries"]), table
