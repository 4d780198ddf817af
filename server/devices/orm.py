from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from server.core.db import Base, str_enum, utcnow


class DeviceStatus(StrEnum):
    ONLINE = "online"
    OFFLINE = "offline"
    REVOKED = "revoked"


class Device(Base):
    __tablename__ = "devices"
    __table_args__ = (
        Index("ix_devices_name_id", "name", "id"),
        Index("ix_devices_status_last_seen_at", "status", "last_seen_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(128))
    cluster_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("clusters.id", ondelete="SET NULL"), index=True
    )
    labels: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    status: Mapped[DeviceStatus] = mapped_column(
        str_enum(DeviceStatus, "device_status"),
        default=DeviceStatus.OFFLINE,
    )
    agent_version: Mapped[str | None] = mapped_column(String(64))
    model_version: Mapped[str | None] = mapped_column(String(64), index=True)
    health: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    enrolled_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    # The device credential in Mosquitto's password-file format (PBKDF2-SHA512), so that
    # the broker's files can be written without the credential, which is never stored.
    mqtt_password_hash: Mapped[str | None] = mapped_column(String(255))


class EnrollmentToken(Base):
    """A one-time token that lets one new device enroll; only its SHA-256 is stored."""

    __tablename__ = "enrollment_tokens"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    display_prefix: Mapped[str] = mapped_column(String(16))
    description: Mapped[str] = mapped_column(String(256), default="")
    cluster_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("clusters.id", ondelete="CASCADE")
    )
    labels: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
    device_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("devices.id", ondelete="SET NULL")
    )
    revoked_at: Mapped[datetime | None]
