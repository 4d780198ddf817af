from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from server.core.db import Base


class DeadLetter(Base):
    """An MQTT message ingest could not store, kept for inspection with the reason."""

    __tablename__ = "dead_letters"
    __table_args__ = (Index("ix_dead_letters_reason_id", "reason", "id"),)

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    received_at: Mapped[datetime]
    topic: Mapped[str] = mapped_column(String(512))
    # The device id as the topic names it: not necessarily a known device, or a UUID.
    topic_device_id: Mapped[str | None] = mapped_column(String(128), index=True)
    reason: Mapped[str] = mapped_column(String(32))
    detail: Mapped[str] = mapped_column(Text)
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    payload_size: Mapped[int]
    truncated: Mapped[bool]


class TelemetryWindow(Base):
    """One telemetry report: a device's health and its model's metrics over one window.

    Rollouts compare canary and stable cohorts from these rows.
    """

    __tablename__ = "telemetry_windows"
    __table_args__ = (
        UniqueConstraint("device_id", "event_id"),
        Index("ix_telemetry_windows_model_version_sent_at", "model_version", "sent_at"),
    )

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    device_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"))
    cluster_id: Mapped[uuid.UUID | None]
    event_id: Mapped[uuid.UUID]
    sent_at: Mapped[datetime]
    received_at: Mapped[datetime]
    window_seconds: Mapped[float] = mapped_column(Float)
    agent_version: Mapped[str] = mapped_column(String(64))
    model_version: Mapped[str | None] = mapped_column(String(64))
    feature_spec_version: Mapped[int]
    scored: Mapped[int]
    flagged: Mapped[int]
    inference_errors: Mapped[int]
    model_load_failures: Mapped[int]
    latency_p50_ms: Mapped[float] = mapped_column(Float)
    latency_p95_ms: Mapped[float] = mapped_column(Float)
    latency_p99_ms: Mapped[float] = mapped_column(Float)
    score_histogram: Mapped[list[int]] = mapped_column(JSON)
    outbox: Mapped[dict[str, Any]] = mapped_column(JSON)
    last_update: Mapped[str | None] = mapped_column(Text)
