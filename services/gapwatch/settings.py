"""The one settings object. Built only in entry points (cli.py) and passed down.

Environment variables use the prefix ``GAPWATCH_`` and one underscore between section and
field, so ``GAPWATCH_KAFKA_BOOTSTRAP`` sets ``kafka.bootstrap`` and
``GAPWATCH_INGEST_CHUNK_MAX_MESSAGES`` sets ``ingest.chunk_max_messages``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from gapwatch.core.errors import ConfigError

__all__ = ["Settings", "default_refdata_dir", "repo_root"]


def repo_root() -> Path:
    """The checkout this package lives in (services/gapwatch/settings.py -> root)."""
    return Path(__file__).resolve().parents[2]


def default_refdata_dir() -> Path:
    """``../shared/data`` beside the checkout when it exists, else ``./refdata``."""
    for candidate in (
        repo_root().parent / "shared" / "data",
        Path.cwd().parent / "shared" / "data",
    ):
        if candidate.is_dir():
            return candidate
    return repo_root() / "refdata"


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class KafkaSettings(_Section):
    bootstrap: str = "127.0.0.1:9092"
    topic: str = "gapwatch.encounters.v1"
    dlq_topic: str = "gapwatch.encounters.dlq"
    partitions: int = Field(12, ge=1, le=1000)
    """12 partitions: up to 12 ingest workers, and divisible by 2, 3, 4 and 6 replicas."""
    replication_factor: int = Field(1, ge=1)
    alerts_topic: str = "gapwatch.alerts.v1"
    """Every alert change (new, updated, resolved) as JSON, keyed by the alert's id."""
    group_id: str = "gapwatch-ingest"
    session_timeout_s: float = Field(10.0, gt=0)
    """Short because Tansu holds JoinGroup for session.timeout/2 (docs/tansu.md §2)."""
    heartbeat_interval_s: float = Field(3.0, gt=0)


class RedisSettings(_Section):
    url: str = "redis://127.0.0.1:6379/0"
    namespace: str = Field("gapwatch", pattern=r"^[A-Za-z0-9_.-]+$")
    """Hash tag for every key (``gw:{namespace}:...``): one slot on Redis Cluster, so the
    atomic counts-plus-offsets script can touch all its keys."""


class IngestSettings(_Section):
    chunk_max_messages: int = Field(200, ge=1)
    """Messages per atomic Redis write; 200 x 500-event batches = 100k events."""
    chunk_within_s: float = Field(0.1, gt=0)
    """Longest wait to fill a chunk: bounds the latency added at low rates."""
    hour_retention_days: int = Field(8, ge=1)
    """Hour buckets are kept 8 days, so 1h, 24h and 7d windows are exact to the hour;
    longer windows widen their oldest edge to a whole day (reported in the response)."""
    day_retention_days: int = Field(400, ge=1)
    """Day buckets are kept 400 days; older events are dead-lettered as ``too_late``."""
    lsoa_retention_days: int = Field(35, ge=1)
    """Per-LSOA day counts (the small-area drill-down, 28 days by default) are kept 35
    days: at 400 days they would cost Redis on the order of a gigabyte."""
    future_skew_s: int = Field(900, ge=0)
    """Events more than 15 minutes in the future are clock errors."""
    dedup_horizon_days: int = Field(8, ge=1)
    """An event_id published again within 8 days of its event time (or of when it was
    first produced, if later) counts once; the index holds one horizon of ids."""
    web_port: int = Field(6066, ge=0, le=65535)
    web_host: str = "127.0.0.1"
    redis_retry_attempts: int = Field(60, ge=1)
    """Redis write attempts (exponential backoff capped at 5 s) before the worker stops:
    60 attempts ride out several minutes of Redis downtime."""
    data_dir: Path = Field(default_factory=lambda: Path(tempfile.gettempdir()) / "gapwatch-faust")
    """faust's working directory (it keeps no state there with the memory store)."""

    @model_validator(mode="after")
    def _day_outlives_hour(self) -> IngestSettings:
        if self.day_retention_days < self.hour_retention_days:
            raise ValueError("day_retention_days must be at least hour_retention_days")
        if self.lsoa_retention_days > self.day_retention_days:
            raise ValueError("lsoa_retention_days must be at most day_retention_days")
        return self


class ApiSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    reference_ethnic_group: Literal["white", "mixed", "asian", "black", "other"] = Field(
        "white", description="the group each ethnic group is compared with in the gap"
    )
    sii_repetitions: int = Field(
        100_000, ge=1000, description="Monte Carlo repetitions for SII/RII limits (PHE: 100,000)"
    )
    sii_seed: int = Field(20130101, description="seed of the SII simulation (results repeat)")
    cache_windows: int = Field(
        256, ge=1, description="window sums kept in memory, re-read when a bucket changes"
    )
    versions_max_age_ms: float = Field(
        250.0,
        ge=0,
        description="how old the ICBs' write ids may be before a request re-reads them "
        "(answers are at most this stale)",
    )


class AlertSettings(_Section):
    """The alerter: SPC over each ICB's gap series, stale feeds, and delivery."""

    indicators: tuple[str, ...] = ()
    """Indicators charted (empty: every indicator in the catalogue)."""
    breakdowns: tuple[Literal["imd_quintile", "imd_decile", "ethnic_group"], ...] = (
        "imd_quintile",
        "ethnic_group",
    )
    """Deciles repeat what quintiles show with more noise, so they are off by default."""
    period: Literal["day", "week"] = "day"
    lateness_s: int = Field(3600, ge=0)
    """A period is charted once it has ended and this long has passed (late events)."""
    history_periods: int = Field(90, ge=13, le=400)
    """Points per chart: limits need 13 (Making Data Count); 90 days by default."""
    min_events: int = Field(5, ge=0)
    """A period is charted only when each compared group has this many events (fewer is
    mostly skewed Poisson noise, which the XmR rules over-signal)."""
    interval_s: float = Field(5.0, gt=0)
    """How often changed series are re-evaluated and firing alerts re-sent."""
    settle_s: float = Field(30.0, ge=0)
    """An ICB is re-charted once its closed days have not changed for this long: a
    backfill or replay fills in history first, then the charts are judged once."""
    screen_outliers: bool = True
    two_in_three: Literal["band", "beyond"] = "band"
    run_length: int = Field(7, ge=2)
    fix_after: int | None = Field(None, ge=12)
    stale_multiple: float = Field(10.0, gt=1)
    """A feed is stale after this many of its usual gaps between events..."""
    stale_min_silence_s: int = Field(900, ge=0)
    """...and at least this long."""
    webhook_urls: tuple[str, ...] = ()
    """Receivers of Alertmanager-format webhook messages."""
    alertmanager_urls: tuple[str, ...] = ()
    """Alertmanagers to push to through their v2 API (e.g. http://127.0.0.1:9093)."""
    webhook_attempts: int = Field(8, ge=1)
    external_url: str = "http://127.0.0.1:8000"
    """The API's public address, for links back from alerts."""
    port: int = Field(6067, ge=0, le=65535)
    """The alerter's /metrics and /healthz."""
    host: str = "127.0.0.1"


class AuthSettings(_Section):
    """Bearer tokens (signed JWTs) for every /v1 endpoint but /v1/public, and the
    API's hardening. docs/governance.md says who may see what."""

    jwt_secret: SecretStr | None = None
    """The HMAC key tokens are signed with (at least 32 bytes). Required: the API will
    not start without it. ``GAPWATCH_AUTH_JWT_SECRET``; keep it in a secret store."""
    algorithm: Literal["HS256", "HS384", "HS512"] = "HS256"
    issuer: str = "gapwatch"
    audience: str = "gapwatch-api"
    max_ttl_s: int = Field(30 * 86_400, ge=60)
    """The longest lifetime ``gapwatch token`` issues and the API accepts (30 days)."""
    leeway_s: int = Field(30, ge=0, le=300)
    """Clock skew allowed between the issuer and the API when checking expiry."""
    rate_per_s: float = Field(20.0, gt=0)
    """Requests per second each token may make on average..."""
    rate_burst: int = Field(200, ge=1)
    """...with bursts up to this many (a dashboard's first load makes a dozen)."""
    cors_origins: tuple[str, ...] = ()
    """Origins allowed to call the API from a browser page of their own (none: the
    dashboard is served by the API itself, so CORS is off)."""
    max_url_bytes: int = Field(2048, ge=256)
    """Longest path plus query string accepted (414 beyond)."""
    max_body_bytes: int = Field(0, ge=0)
    """Largest request body accepted (413 beyond): every endpoint is a GET."""

    @model_validator(mode="after")
    def _long_enough(self) -> AuthSettings:
        if self.jwt_secret is not None and len(self.jwt_secret.get_secret_value()) < 32:
            raise ValueError("auth.jwt_secret must be at least 32 bytes")
        return self


class AuditSettings(_Section):
    """The append-only record of every non-public read (a Redis stream, also logged)."""

    retention_days: int = Field(90, ge=1)
    """Entries older than this are trimmed from the stream; the log lines (shipped to
    the organisation's log store) are the long-term record."""
    flush_interval_s: float = Field(0.2, gt=0)
    """Entries are written in batches at most this far apart (and at shutdown)."""


class PublisherSettings(_Section):
    """Trust-side settings of ``gapwatch publish`` and the producer library."""

    person_key_secret: SecretStr | None = None
    """The trust's own HMAC key that turns an NHS number into ``person_key``. It stays
    with the trust: gapwatch's worker and API never see it, so nobody outside the trust
    can turn a key back into an NHS number by hashing candidates."""


class RefdataSettings(_Section):
    dir: Path = Field(default_factory=default_refdata_dir)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="GAPWATCH_",
        env_nested_delimiter="_",
        env_nested_max_split=1,
        frozen=True,
        extra="ignore",
    )

    kafka: KafkaSettings = KafkaSettings()
    redis: RedisSettings = RedisSettings()
    ingest: IngestSettings = IngestSettings()
    api: ApiSettings = ApiSettings()
    alerts: AlertSettings = AlertSettings()
    auth: AuthSettings = AuthSettings()
    audit: AuditSettings = AuditSettings()
    publisher: PublisherSettings = PublisherSettings()
    refdata: RefdataSettings = RefdataSettings()
    schemas_dir: Path = Field(default_factory=lambda: repo_root() / "schemas")

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if not self.kafka.bootstrap.strip():
            raise ValueError("kafka.bootstrap must name at least one broker")
        return self

    def require_refdata(self) -> Path:
        if not (self.refdata.dir / "iod2025_lsoa21_england.csv.gz").is_file():
            raise ConfigError(
                f"reference data not found in {self.refdata.dir}: set GAPWATCH_REFDATA_DIR "
                "or build it with `gapwatch refdata build`"
            )
        return self.refdata.dir
