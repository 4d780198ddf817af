"""The one settings tree.

Every setting comes from an ``EDGEPLANE_*`` environment variable whose name is the
path to the field, joined with ``__`` (``EDGEPLANE_DATABASE__URL``). The embedded
profile needs none of them; the production profile refuses to start while a
required one is missing or still has its development default.
"""

from __future__ import annotations

from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Literal, Self

from pydantic import BaseModel, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_SECRET_KEY = "edgeplane-embedded-development-secret-key-do-not-use"
# A valid Fernet key that is public knowledge: only the embedded profile accepts it.
DEV_ENCRYPTION_KEY = "ZW1iZWRkZWQtcHJvZmlsZS1ub3Qtc2VjcmV0LWtleSE="


EMBEDDED_MQTT_PORT = 11883


class Profile(StrEnum):
    EMBEDDED = "embedded"
    PRODUCTION = "production"


class DatabaseSettings(BaseModel):
    url: str | None = Field(
        default=None,
        description="SQLAlchemy URL. Embedded default: SQLite file in the data directory. "
        "Production: postgresql+psycopg://user:password@host:5432/db",
    )
    pool_size: int = Field(default=10, ge=1, description="Connections kept per process.")
    echo: bool = Field(default=False, description="Log every SQL statement (debugging only).")


class RedisSettings(BaseModel):
    url: str | None = Field(
        default=None,
        description="Redis URL for the Celery broker, results and rate limits. "
        "Required in production; the embedded profile uses SQLite and memory instead.",
    )
    key_prefix: str = Field(
        default="edgeplane",
        min_length=1,
        description="Prefix of EdgePlane's rate-limit keys, so that deployments can share a Redis.",
    )


class MqttSettings(BaseModel):
    host: str = Field(default="127.0.0.1", description="MQTT broker host.")
    port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="MQTT broker port. Default: 1883, or 11883 for the embedded broker "
        "(so it does not clash with a broker already on the machine).",
    )
    username: str | None = Field(default=None, description="Control-plane MQTT account.")
    password: SecretStr | None = Field(default=None, description="Password of that account.")
    tls: bool = Field(default=False, description="Connect with TLS.")
    embedded_broker: bool | None = Field(
        default=None,
        description="Start an in-process MQTT 3.1.1 broker with `edgeplane serve`. "
        "Default: on in the embedded profile, off in production.",
    )
    ingest_username: str | None = Field(
        default=None,
        description="MQTT account of `edgeplane ingest`, the only one that reads every "
        "device's uploads. Default: the control-plane account.",
    )
    ingest_password: SecretStr | None = Field(default=None, description="Password of that account.")
    password_file: Path | None = Field(
        default=None,
        description="Where the control plane writes Mosquitto's password file (one account "
        "per device, plus the control-plane and ingest accounts). Unset: not written.",
    )
    acl_file: Path | None = Field(
        default=None,
        description="Where the control plane writes Mosquitto's ACL file. Unset: not written.",
    )


class IngestSettings(BaseModel):
    mqtt_version: Literal["5", "3.1.1"] | None = Field(
        default=None,
        description="MQTT version of `edgeplane ingest`: 5 uses a shared subscription, so "
        "several ingest processes split the load; 3.1.1 (one consumer) suits brokers without "
        "MQTT 5. Default: 3.1.1 with the embedded broker, else 5.",
    )
    client_id: str | None = Field(
        default=None,
        description="MQTT client id of this ingest process; keep it stable across restarts "
        "(its session holds unacknowledged messages). Default: edgeplane-ingest-<host name>.",
    )
    session_expiry_seconds: int = Field(
        default=86400,
        ge=60,
        description="How long the broker keeps the session (and its queued messages) of a "
        "stopped ingest process (MQTT 5).",
    )
    receive_maximum: int = Field(
        default=2000,
        ge=10,
        le=65535,
        description="Unacknowledged messages the broker may send at once (MQTT 5). Messages "
        "are acknowledged after their batch commits, so keep it above batch_max_messages.",
    )
    batch_max_messages: int = Field(
        default=1000, ge=1, description="A batch is written once it holds this many messages."
    )
    batch_max_events: int = Field(
        default=5000, ge=1, description="... or this many events, whichever comes first."
    )
    flush_interval_ms: int = Field(
        default=25, ge=1, description="... or this long after its first message arrived."
    )
    max_message_bytes: int = Field(
        default=1_048_576, ge=1024, description="Larger messages are dead-lettered unread."
    )
    dead_letter_max_bytes: int = Field(
        default=16_384, ge=0, description="Raw bytes kept of a dead-lettered message."
    )
    device_cache_seconds: float = Field(
        default=10.0,
        ge=0,
        description="How long ingest trusts what it read about a device (known, revoked); "
        "a revoked device's uploads are refused at most this long after revocation.",
    )


class StorageBackend(StrEnum):
    LOCAL = "local"
    S3 = "s3"


class StorageSettings(BaseModel):
    backend: StorageBackend | None = Field(
        default=None, description="Object store: local folder (embedded) or s3 (production)."
    )
    path: Path | None = Field(
        default=None, description="Folder of the local backend. Default: <data_dir>/objects."
    )
    bucket: str = Field(default="edgeplane", description="S3 bucket.")
    endpoint_url: str | None = Field(
        default=None, description="S3 endpoint (MinIO, moto); empty for AWS."
    )
    region: str = Field(default="us-east-1", description="S3 region.")
    access_key_id: str | None = Field(default=None, description="S3 access key id.")
    secret_access_key: SecretStr | None = Field(default=None, description="S3 secret key.")


class SecuritySettings(BaseModel):
    secret_key: SecretStr = Field(
        default=SecretStr(DEV_SECRET_KEY),
        description="Key for signing short-lived URLs. At least 32 characters; production "
        "refuses the default.",
    )
    encryption_keys: SecretStr = Field(
        default=SecretStr(DEV_ENCRYPTION_KEY),
        description="Comma-separated Fernet keys for secrets at rest (kubeconfigs, cloud "
        "credentials). The first encrypts; all decrypt, so keys can be rotated.",
    )
    session_ttl_minutes: int = Field(
        default=12 * 60, ge=1, description="Lifetime of a dashboard sign-in."
    )
    api_token_max_days: int = Field(
        default=365, ge=1, description="Longest lifetime an API token may be given."
    )
    enrollment_token_ttl_hours: int = Field(
        default=24, ge=1, description="Default lifetime of a device enrollment token."
    )
    login_attempts_per_minute: int = Field(
        default=10, ge=1, description="Failed sign-ins allowed per user name and per address."
    )


class DeviceSettings(BaseModel):
    heartbeat_interval_seconds: int = Field(
        default=30, ge=1, description="How often agents report; they are told this value."
    )
    offline_after_missed_heartbeats: int = Field(
        default=3, ge=1, description="Missed heartbeats before a device is marked offline."
    )


class LogSettings(BaseModel):
    level: str = Field(default="INFO", description="Root log level.")
    file: Path | None = Field(
        default=None, description="Append log lines to this file instead of standard error."
    )
    json_format: bool = Field(
        default=False,
        alias="json",
        description="One JSON object per line (on by default in production).",
    )


class WebSettings(BaseModel):
    dist_dir: Path | None = Field(
        default=None,
        description="The built dashboard (index.html and assets/). Default: web/dist of "
        "the source checkout.",
    )


class RolloutSettings(BaseModel):
    tick_seconds: float = Field(
        default=10.0,
        gt=0,
        description="How often the worker analyses running rollouts and moves them on.",
    )
    auto_start: bool = Field(
        default=False,
        description="Start a rollout on all devices for every candidate that retraining "
        "registers, with the steps below.",
    )
    auto_step_percents: list[float] = Field(
        default=[5.0, 25.0, 50.0, 100.0],
        min_length=1,
        description="Steps of an automatic rollout, in percent of the target.",
    )
    auto_soak_seconds: int = Field(
        default=300, ge=0, description="Soak of each step of an automatic rollout."
    )
    auto_min_scored: int = Field(
        default=200,
        ge=1,
        description="Canary transactions an automatic rollout's analysis needs before rates count.",
    )


class TrainingSettings(BaseModel):
    """Retraining from fleet data: when it runs and the gate a candidate must pass."""

    schedule_hours: float = Field(
        default=24.0, ge=0, description="Retrain on this period; 0 switches the schedule off."
    )
    drift_check_seconds: float = Field(
        default=600.0, gt=0, description="How often the fleet's data is checked for drift."
    )
    model_name: str = Field(
        default="fraud",
        min_length=1,
        max_length=48,
        description="The model name retraining trains.",
    )
    window_days: float = Field(
        default=30.0, gt=0, description="A retrain without a window trains on these last days."
    )
    gate_pr_auc_margin: float = Field(
        default=0.01,
        ge=0,
        description="The gate refuses a candidate whose PR-AUC is below the stable model's by "
        "more than this, on the same held-out slice.",
    )
    gate_recall_margin: float = Field(
        default=0.02,
        ge=0,
        description="The gate refuses a candidate whose recall at gate_false_positive_rate is "
        "below the stable model's by more than this.",
    )
    gate_false_positive_rate: float = Field(
        default=0.01, gt=0, lt=1, description="The false-positive rate the gate reads recall at."
    )
    stale_run_hours: float = Field(
        default=2.0,
        gt=0,
        description="A run still running after this long is presumed dead and may be taken over.",
    )
    drift_window_minutes: float = Field(
        default=60.0, gt=0, description="The recent window the drift check reads."
    )
    drift_min_samples: int = Field(
        default=500, ge=1, description="Fewer fleet samples than this in a window: no PSI verdict."
    )
    drift_max_samples: int = Field(
        default=20_000, ge=1, description="At most this many recent samples are read per check."
    )
    drift_psi_threshold: float = Field(
        default=0.2, gt=0, description="PSI above this on any feature is a significant shift."
    )
    drift_profile_bins: int = Field(
        default=10, ge=2, le=100, description="Quantile bins of a model's feature profile."
    )
    flag_rate_reference_hours: float = Field(
        default=24.0,
        gt=0,
        description="The recent flag rate is compared with the stable model's flag rate over "
        "these hours before the recent window.",
    )
    flag_rate_min_scored: int = Field(
        default=1_000,
        ge=1,
        description="Fewer scored transactions than this in either window: no flag-rate verdict.",
    )
    flag_rate_max_ratio: float = Field(
        default=2.0,
        gt=1,
        description="The flag rate changing by more than this factor (up or down) is drift.",
    )
    precision_window_hours: float = Field(
        default=168.0,
        gt=0,
        description="Labelled anomalies of the stable model in these last hours give its "
        "recent precision (labels arrive late, hence the longer window).",
    )
    label_settle_hours: float = Field(
        default=24.0,
        ge=0,
        description="Labels of events younger than this are still coming in: a false alarm "
        "is reviewed within minutes, a chargeback takes days. The precision check leaves "
        "such anomalies out (they would understate precision), and snapshots leave out such "
        "unlabelled samples (fraud not yet charged back would be learnt as legitimate).",
    )
    precision_min_labelled: int = Field(
        default=30, ge=1, description="Fewer labelled anomalies than this: no precision verdict."
    )
    precision_max_drop: float = Field(
        default=0.2,
        gt=0,
        le=1,
        description="Precision on labelled anomalies this far below the model's test precision "
        "is drift.",
    )
    recall_min_fraud: int = Field(
        default=20,
        ge=1,
        description="Fewer labelled frauds (flagged or charged back) than this in the "
        "precision window: no recall verdict.",
    )
    recall_max_drop: float = Field(
        default=0.25,
        gt=0,
        le=1,
        description="Estimated recall this far below the model's test recall is drift.",
    )
    drift_cooldown_hours: float = Field(
        default=24.0,
        ge=0,
        description="After a drift-triggered run, drift does not trigger another for this long.",
    )


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="EDGEPLANE_",
        env_nested_delimiter="__",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        populate_by_name=True,
    )

    profile: Profile = Field(default=Profile.EMBEDDED, description="embedded or production.")
    data_dir: Path = Field(
        default=Path("var"), description="Where the embedded profile keeps its files."
    )
    public_url: str = Field(
        default="http://127.0.0.1:8000", description="Address devices and browsers use."
    )
    database: DatabaseSettings = DatabaseSettings()
    redis: RedisSettings = RedisSettings()
    mqtt: MqttSettings = MqttSettings()
    storage: StorageSettings = StorageSettings()
    security: SecuritySettings = SecuritySettings()
    devices: DeviceSettings = DeviceSettings()
    log: LogSettings = LogSettings()
    ingest: IngestSettings = IngestSettings()
    web: WebSettings = WebSettings()
    rollouts: RolloutSettings = RolloutSettings()
    training: TrainingSettings = TrainingSettings()

    @model_validator(mode="after")
    def _check_profile(self) -> Self:
        problems: list[str] = []
        if len(self.security.secret_key.get_secret_value()) < 32:
            problems.append("EDGEPLANE_SECURITY__SECRET_KEY must be at least 32 characters")
        if self.profile is Profile.PRODUCTION:
            if not self.database.url:
                problems.append("EDGEPLANE_DATABASE__URL is required in production")
            elif self.database.url.startswith("sqlite"):
                problems.append(
                    "EDGEPLANE_DATABASE__URL is SQLite, which the production profile "
                    "does not support: use PostgreSQL"
                )
            if not self.redis.url:
                problems.append("EDGEPLANE_REDIS__URL is required in production")
            if self.security.secret_key.get_secret_value() == DEV_SECRET_KEY:
                problems.append("EDGEPLANE_SECURITY__SECRET_KEY still has its development default")
            if DEV_ENCRYPTION_KEY in self.security.encryption_keys.get_secret_value():
                problems.append(
                    "EDGEPLANE_SECURITY__ENCRYPTION_KEYS still has its development default"
                )
            if self.storage.backend is StorageBackend.LOCAL:
                problems.append("EDGEPLANE_STORAGE__BACKEND=local is for the embedded profile")
            if self.mqtt.embedded_broker:
                problems.append("EDGEPLANE_MQTT__EMBEDDED_BROKER is for the embedded profile")
        if problems:
            raise ValueError("invalid settings: " + "; ".join(problems))
        return self

    @property
    def is_embedded(self) -> bool:
        return self.profile is Profile.EMBEDDED

    @property
    def database_url(self) -> str:
        return self.database.url or f"sqlite:///{self.data_dir / 'edgeplane.sqlite'}"

    @property
    def celery_broker_url(self) -> str:
        if self.redis.url:
            return self.redis.url
        return f"sqla+sqlite:///{self.data_dir / 'celery-broker.sqlite'}"

    @property
    def celery_result_backend(self) -> str:
        if self.redis.url:
            return self.redis.url
        return f"db+sqlite:///{self.data_dir / 'celery-results.sqlite'}"

    @property
    def rate_limit_storage_url(self) -> str:
        return self.redis.url or "memory://"

    @property
    def storage_backend(self) -> StorageBackend:
        if self.storage.backend is not None:
            return self.storage.backend
        return StorageBackend.LOCAL if self.is_embedded else StorageBackend.S3

    @property
    def storage_path(self) -> Path:
        return self.storage.path or self.data_dir / "objects"

    @property
    def run_embedded_broker(self) -> bool:
        if self.mqtt.embedded_broker is not None:
            return self.mqtt.embedded_broker
        return self.is_embedded

    @property
    def mqtt_port(self) -> int:
        if self.mqtt.port is not None:
            return self.mqtt.port
        return EMBEDDED_MQTT_PORT if self.run_embedded_broker else 1883

    @property
    def ingest_mqtt_version(self) -> str:
        if self.ingest.mqtt_version is not None:
            return self.ingest.mqtt_version
        return "3.1.1" if self.run_embedded_broker else "5"

    @property
    def json_logs(self) -> bool:
        return self.log.json_format or not self.is_embedded

    @property
    def device_offline_after_seconds(self) -> int:
        return (
            self.devices.heartbeat_interval_seconds * self.devices.offline_after_missed_heartbeats
        )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
