from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from server.core.db import Base, str_enum, utcnow
from server.core.security import EncryptedText


class ModelStage(StrEnum):
    CANDIDATE = "candidate"
    CANARY = "canary"
    STABLE = "stable"
    RETIRED = "retired"


class SigningKey(Base):
    """An Ed25519 key of the control plane; the private half is encrypted at rest.

    One key signs (``is_active``); every key not retired is still trusted by agents,
    so a rotation does not invalidate models that are already out.
    """

    __tablename__ = "signing_keys"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    public_key: Mapped[str] = mapped_column(String(64), unique=True)
    private_key: Mapped[str] = mapped_column(EncryptedText())
    is_active: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    retired_at: Mapped[datetime | None]


class ModelVersion(Base):
    __tablename__ = "model_versions"
    __table_args__ = (UniqueConstraint("name", "version"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(64))
    version: Mapped[int]
    label: Mapped[str] = mapped_column(String(64), unique=True)
    stage: Mapped[ModelStage] = mapped_column(
        str_enum(ModelStage, "model_stage"),
        default=ModelStage.CANDIDATE,
    )
    feature_spec_version: Mapped[int]
    quantization: Mapped[str] = mapped_column(String(16))
    threshold: Mapped[float]
    sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int]
    manifest: Mapped[str] = mapped_column(Text, doc="The exact signed bytes of manifest.json.")
    signature: Mapped[str] = mapped_column(String(128))
    signing_key_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("signing_keys.id"))
    artifact_prefix: Mapped[str] = mapped_column(String(256))
    metrics: Mapped[dict[str, float]] = mapped_column(JSON, default=dict)
    lineage: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(128))
