"""Shared fixtures: a tiny hand-made reference data set for fast tests, the real
reference directory for integration tests, and the services the test run needs."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from gapwatch.adapters.avro_codec import AvroCodec
from gapwatch.core.refdata import Area, Icb, PopulationTable, ReferenceData, Trust
from gapwatch.devstack.services import free_port, redis_answers, start_redis, start_tansu
from gapwatch.settings import default_refdata_dir, repo_root

# One ESP2013 band per breakdown band keeps the tiny table small: a cell's people are
# in both bands, as the real table's cells are.
_TINY_AGE_CELLS = (
    ("0-4", "0-4"),
    ("5-17", "10-14"),
    ("18-39", "30-34"),
    ("40-64", "50-54"),
    ("65-79", "70-74"),
    ("80+", "85-89"),
)

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

TEST_JWT_SECRET = "test-only-signing-key-0123456789abcdef-not-for-production"  # noqa: S105
"""Every Settings built in the test run (and every process it starts) signs and checks
API tokens with this key; tests/tokens.py issues tokens for it."""
os.environ.setdefault("GAPWATCH_AUTH_JWT_SECRET", TEST_JWT_SECRET)


def need(condition: bool, reason: str) -> None:
    """Skip locally when a prerequisite is missing; in CI that is a failure, so a
    silent skip can never pass a build."""
    if not condition:
        if IN_CI:
            pytest.fail(f"required in CI: {reason}")
        pytest.skip(reason)


@pytest.fixture(scope="session")
def codec() -> AvroCodec:
    return AvroCodec(repo_root() / "schemas")


@pytest.fixture(scope="session")
def real_refdata_dir() -> Path:
    path = default_refdata_dir()
    need((path / "iod2025_lsoa21_england.csv.gz").is_file(), f"no reference data at {path}")
    return path


@pytest.fixture(scope="session")
def real_ref(real_refdata_dir: Path) -> ReferenceData:
    """The real reference data (England's LSOAs, ICBs, populations), loaded once."""
    from gapwatch.adapters.refdata_files import load_reference_data

    return load_reference_data(real_refdata_dir)


def tiny_reference_data() -> ReferenceData:
    """Two ICBs, five LSOAs (one per quintile in QOP, one in QHL), one changed 2011 code,
    one postcode and two trusts. Populations are round numbers so rates are checkable."""
    areas = {
        "E01000101": Area("E01000101", "QOP", 10, 1, 1),
        "E01000102": Area("E01000102", "QOP", 9000, 3, 2),
        "E01000103": Area("E01000103", "QOP", 15000, 5, 3),
        "E01000104": Area("E01000104", "QOP", 22000, 7, 4),
        "E01000105": Area("E01000105", "QOP", 30000, 9, 5),
        "E01000201": Area("E01000201", "QHL", 500, 1, 1),
    }
    areas["E01099999"] = areas["E01000102"]  # a 2011 code split in 2021
    cells = {
        "QOP": {
            (str(d), sex, band, esp): 500.0
            for d in range(1, 11)
            for sex in ("male", "female")
            for band, esp in _TINY_AGE_CELLS
        },
        "QHL": {("1", "female", "18-39", "20-24"): 5000.0},
    }
    ethnic = {
        "QOP": {
            "white": 40000.0,
            "asian": 10000.0,
            "black": 5000.0,
            "mixed": 3000.0,
            "other": 2000.0,
        }
    }
    return ReferenceData(
        imd_edition="IoD2025",
        geography="LSOA 2021, ICB April 2024",
        areas=areas,
        lsoa11_changed=frozenset({"E01099999"}),
        postcodes={"M15 4AB": "E01000103"},
        icbs={
            "QOP": Icb("QOP", "E54000057", "NHS Greater Manchester ICB", "Y62", "North West"),
            "QHL": Icb("QHL", "E54000055", "NHS Birmingham and Solihull ICB", "Y60", "Midlands"),
        },
        trusts={
            "R0A": Trust("R0A", "MANCHESTER UNIVERSITY NHS FT", "QOP", (("QOP", 0.9),)),
            "RRK": Trust("RRK", "UNIVERSITY HOSPITALS BIRMINGHAM", "QHL", (("QHL", 1.0),)),
        },
        population=PopulationTable(cells, ethnic),
    )


@pytest.fixture()
def tiny_ref() -> ReferenceData:
    return tiny_reference_data()


NOW_MS = 1_795_780_000_000  # 2026-11-27T11:46:40Z, a fixed "now" for unit tests


@pytest.fixture()
def make_event() -> Callable[..., dict[str, Any]]:
    """A valid EncounterEvent dict; keyword arguments override fields."""

    def build(**overrides: Any) -> dict[str, Any]:
        event: dict[str, Any] = {
            "event_id": str(uuid.uuid4()),
            "event_type": "ed_arrival",
            "occurred_at": NOW_MS - 60_000,
            "provider_code": "R0A",
            "dataset": "ECDS",
            "person_key": "9f2c4e",
            "age_years": 34,
            "sex": "2",
            "ethnic_category": "A",
            "lsoa_code": "E01000101",
            "lsoa_vintage": None,
            "postcode": None,
            "site_code": None,
            "attendance_status": None,
            "admission_method": None,
            "minutes_in_department": None,
            "weeks_waiting": None,
            "ed_department_type": None,
        }
        event.update(overrides)
        return event

    return build


# Real parts for integration tests: a fresh Tansu broker per session (started here)
# and the machine's Redis (or one the run starts), with a key namespace per test.

REDIS_URL = os.environ.get("GAPWATCH_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    process = start_tansu(port, tmp_path_factory.mktemp("tansu") / "tansu.log")
    yield f"127.0.0.1:{port}"
    process.stop()


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if redis_answers(REDIS_URL):
        yield REDIS_URL
        return
    port = free_port()
    try:
        server = start_redis(port, tmp_path_factory.mktemp("redis") / "redis.log")
    except Exception as exc:  # no server binary at all
        need(False, f"no Redis at {REDIS_URL} and none could be started: {exc}")
        raise
    yield f"redis://127.0.0.1:{port}/0"
    server.stop()


def clear_namespace(redis_url: str, ns: str) -> None:
    """Delete a test namespace's keys: the counts (``gw:``), the alerts (``gwa:``) and
    the audit trail (``gwaudit:``)."""
    client = redis.Redis.from_url(redis_url)
    for prefix in ("gw", "gwa", "gwaudit"):
        keys = list(client.scan_iter(match=f"{prefix}:{{{ns}}}:*", count=1000))
        if keys:
            client.delete(*keys)


@pytest.fixture()
def namespace(redis_url: str) -> Iterator[str]:
    ns = f"test-{uuid.uuid4().hex[:10]}"
    yield ns
    clear_namespace(redis_url, ns)
