"""The agent's settings: ``EDGEPLANE_AGENT_*`` environment variables over a TOML file.

Nested settings take ``__`` in their variable names (``EDGEPLANE_AGENT_MQTT__VERSION``)
and a table in TOML (``[mqtt] version = "3.1.1"``). The environment wins over the file,
so one image can ship a file and a deployment can still override single values.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

ENV_PREFIX = "EDGEPLANE_AGENT_"
DEFAULT_STATE_DIR = Path("/var/lib/edgeplane-agent")
DEFAULT_HTTP_PORT = 8571


class MqttSettings(BaseModel):
    """The control plane's broker; host and port come from enrollment unless set here."""

    enabled: bool = Field(default=True, description="Off: score and keep everything on disk.")
    host: str | None = Field(default=None, description="Overrides the host given at enrollment.")
    port: int | None = Field(default=None, description="Overrides the port given at enrollment.")
    tls: bool | None = Field(default=None, description="Overrides TLS as given at enrollment.")
    version: Literal["5", "3.1.1"] = Field(
        default="5", description="MQTT 5, or 3.1.1 for brokers without it (the embedded amqtt)."
    )
    keepalive_seconds: int = Field(default=30, ge=5, le=3600)
    client_id: str | None = Field(
        default=None, description="Default: edgeplane-agent-<device id>; keep it stable."
    )


class HttpSettings(BaseModel):
    """The local scoring endpoint for POS terminals waiting on an answer."""

    enabled: bool = True
    host: str = Field(default="127.0.0.1", description="0.0.0.0 to serve the store's network.")
    port: int = Field(default=DEFAULT_HTTP_PORT, ge=0, le=65535)
    token: SecretStr | None = Field(
        default=None, description="If set, /v1/score requires 'Authorization: Bearer <token>'."
    )


class TerminalsSettings(BaseModel):
    """A local MQTT topic on which the store's terminals publish transactions (JSON)."""

    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = 1883
    username: str | None = None
    password: SecretStr | None = None
    topic: str = Field(default="pos/+/transactions", description="Subscription, wildcards allowed.")
    version: Literal["5", "3.1.1"] = "3.1.1"
    client_id: str | None = Field(default=None, description="Default: edgeplane-terminals-<host>.")


class ScoringSettings(BaseModel):
    max_batch: int = Field(
        default=256, ge=1, le=4096, description="Largest micro-batch scored at once."
    )
    sample_rate: float = Field(
        default=0.01, ge=0.0, le=1.0, description="Share of normal traffic uploaded as samples."
    )
    max_cards: int = Field(default=100_000, ge=1, description="Feature state: cards kept (LRU).")
    max_terminals: int = Field(default=10_000, ge=1, description="Feature state: terminals kept.")
    max_queued_transactions: int = Field(
        default=2048, ge=1, description="Stream transactions waiting to be scored; readers wait."
    )


class OutboxSettings(BaseModel):
    max_bytes: int = Field(
        default=256 * 1024 * 1024,
        ge=64 * 1024,
        description="Disk budget of waiting entries; when full, samples go first, then telemetry.",
    )
    resend_after_seconds: float = Field(
        default=30.0, gt=0, description="Unconfirmed entries are sent again after this long."
    )
    max_in_flight_messages: int = Field(
        default=1000, ge=1, le=60000, description="Publishes not yet acknowledged by the broker."
    )
    max_unconfirmed_events: int = Field(
        default=20_000, ge=1, description="Events sent and not yet confirmed by the control plane."
    )
    max_events_per_message: int = Field(default=200, ge=1, le=500)
    max_message_bytes: int = Field(default=512 * 1024, ge=4096)
    synchronous: Literal["normal", "full"] = Field(
        default="normal",
        description="normal: an entry survives a crash of the agent; full: also a power cut "
        "(one fsync per scored micro-batch that produced entries).",
    )


class AgentSettings(BaseSettings):
    """Everything the daemon reads at start; see edge_agent/config.py for the file format."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid", frozen=True
    )

    state_dir: Path = Field(
        default=DEFAULT_STATE_DIR, description="Credentials, models and the outbox."
    )
    control_plane_url: str | None = Field(
        default=None, description="Base URL of the control plane, e.g. https://edgeplane.example"
    )
    device_name: str = Field(default_factory=socket.gethostname, min_length=1, max_length=128)
    enrollment_token: SecretStr | None = Field(
        default=None, description="One-time token; used once, when no credentials exist yet."
    )
    enrollment_token_file: Path | None = Field(
        default=None, description="Read the enrollment token from this file (a mounted Secret)."
    )
    trusted_keys: list[str] = Field(
        default_factory=list,
        description="Control-plane Ed25519 public keys (PEM or base64 of 32 bytes).",
    )
    trusted_key_files: list[Path] = Field(default_factory=list)
    bootstrap_model: Path | None = Field(
        default=None,
        description="A signed artifact folder to start with when no model is installed yet.",
    )
    input: str | None = Field(
        default=None, description="Stream input: '-' for stdin, or a JSON-lines file."
    )
    telemetry_interval_seconds: float = Field(default=60.0, gt=0)
    desired_poll_seconds: float = Field(
        default=300.0, gt=0, description="REST fallback for the desired state."
    )
    shutdown_flush_seconds: float = Field(
        default=5.0, ge=0, description="On SIGTERM, wait this long for confirmations."
    )
    download_max_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    log_level: str = "INFO"
    mqtt: MqttSettings = Field(default_factory=MqttSettings)
    http: HttpSettings = Field(default_factory=HttpSettings)
    terminals: TerminalsSettings = Field(default_factory=TerminalsSettings)
    scoring: ScoringSettings = Field(default_factory=ScoringSettings)
    outbox: OutboxSettings = Field(default_factory=OutboxSettings)

    @field_validator("control_plane_url")
    @classmethod
    def _strip_slash(cls, value: str | None) -> str | None:
        return value.rstrip("/") if value else value

    def enrollment_token_value(self) -> str | None:
        if self.enrollment_token is not None:
            return self.enrollment_token.get_secret_value()
        if self.enrollment_token_file is not None and self.enrollment_token_file.exists():
            return self.enrollment_token_file.read_text().strip() or None
        return None


def load_settings(config_file: Path | None = None, **overrides: object) -> AgentSettings:
    """Settings from ``overrides``, then the environment, then ``config_file`` (TOML)."""

    class _FromFile(AgentSettings):
        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
            if config_file is not None:
                sources.append(TomlConfigSettingsSource(settings_cls, toml_file=config_file))
            return tuple(sources)

    if config_file is not None and not config_file.is_file():
        raise FileNotFoundError(f"no configuration file at {config_file}")
    loaded = _FromFile(**overrides)  # type: ignore[arg-type]
    return AgentSettings.model_validate(loaded.model_dump())
