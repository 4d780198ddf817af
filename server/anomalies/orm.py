from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import (
    BigInteger,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from server.core.db import Base, str_enum


class EventKind(StrEnum):
    ANOMALY = "anomaly"
    SAMPLE = "sample"


class Label(StrEnum):
    CONFIRMED_FRAUD = "confirmed_fraud"
    FALSE_POSITIVE = "false_positive"


class LabelSource(StrEnum):
    OPERATOR = "operator"
    CHARGEBACK = "chargeback"


class ScoredEvent(Base):
    """A transaction as a device scored it: a flagged anomaly, or a random sample of normal
    traffic. Stored once per (device, event id) however often it is delivered; retraining
    learns from the raw fields, the feature vector and the labels.
    """

    __tablename__ = "scored_events"
    __table_args__ = (
        UniqueConstraint("device_id", "event_id"),
        Index("ix_scored_events_kind_id", "kind", "id"),
        Index("ix_scored_events_kind_scored_at", "kind", "scored_at"),
    )

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    kind: Mapped[EventKind] = mapped_column(str_enum(EventKind, "event_kind"))
    device_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"))
    # The device's cluster when the event was stored (no foreign key: history outlives clusters).
    cluster_id: Mapped[uuid.UUID | None] = mapped_column(index=True)
    event_id: Mapped[uuid.UUID]
    received_at: Mapped[datetime]
    scored_at: Mapped[datetime]
    model_version: Mapped[str] = mapped_column(String(64), index=True)
    feature_spec_version: Mapped[int]
    # float32, little-endian: exactly what the model saw (see service.decode_features).
    features: Mapped[bytes] = mapped_column(LargeBinary)
    score: Mapped[float] = mapped_column(Float)
    threshold: Mapped[float] = mapped_column(Float)
    flagged: Mapped[bool]
    transaction_id: Mapped[str] = mapped_column(String(128), index=True)
    store_id: Mapped[str] = mapped_column(String(128))
    terminal_id: Mapped[str] = mapped_column(String(128))
    card_token: Mapped[str] = mapped_column(String(128))
    amount: Mapped[float] = mapped_column(Float)
    currency: Mapped[str] = mapped_column(String(3))
    merchant_category: Mapped[str] = mapped_column(String(4))
    transaction_at: Mapped[datetime] = mapped_column(index=True)
    latitude: Mapped[float] = mapped_column(Float)
    longitude: Mapped[float] = mapped_column(Float)
    label: Mapped[Label | None] = mapped_column(str_enum(Label, "event_label"))
    label_source: Mapped[LabelSource | None] = mapped_column(
        str_enum(LabelSource, "event_label_source")
    )
    labelled_at: Mapped[datetime | None]
    labelled_by: Mapped[str | None] = mapped_column(String(128))
