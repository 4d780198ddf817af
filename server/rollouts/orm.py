from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from server.core.db import Base, str_enum, utcnow


class DesiredState(Base):
    """The model a device should run. ``generation`` grows with every change, so a
    device can ignore a stale message that arrives late."""

    __tablename__ = "desired_states"

    device_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("devices.id", ondelete="CASCADE"), primary_key=True
    )
    model_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("model_versions.id"), index=True)
    rollout_id: Mapped[uuid.UUID | None]
    generation: Mapped[int] = mapped_column(default=0)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class RolloutState(StrEnum):
    RUNNING = "running"
    PAUSED = "paused"
    SUCCEEDED = "succeeded"
    ROLLED_BACK = "rolled_back"
    ABORTED = "aborted"

    @property
    def active(self) -> bool:
        return self in (RolloutState.RUNNING, RolloutState.PAUSED)


class Rollout(Base):
    """A model version going out to a target step by step, with analysis between steps.

    ``active_target_key`` holds the target's key while the rollout is running or paused
    and is NULL afterwards; being unique, it lets the database refuse a second active
    rollout on the same target even when two requests race.
    """

    __tablename__ = "rollouts"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    model_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("model_versions.id"), index=True)
    baseline_model_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("model_versions.id"))
    target: Mapped[dict[str, Any]] = mapped_column(JSON)
    target_key: Mapped[str] = mapped_column(String(512))
    active_target_key: Mapped[str | None] = mapped_column(String(512), unique=True)
    steps: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    thresholds: Mapped[dict[str, Any]] = mapped_column(JSON)
    state: Mapped[RolloutState] = mapped_column(
        str_enum(RolloutState, "rollout_state"), default=RolloutState.RUNNING, index=True
    )
    current_step: Mapped[int] = mapped_column(Integer, default=0)
    step_started_at: Mapped[datetime] = mapped_column(default=utcnow)
    target_size: Mapped[int] = mapped_column(Integer, default=0)
    cohort_size: Mapped[int] = mapped_column(Integer, default=0)
    decision: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]


class RolloutEvent(Base):
    """One entry of a rollout's timeline: a step, an analysis verdict, an operator action."""

    __tablename__ = "rollout_events"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    rollout_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("rollouts.id", ondelete="CASCADE"), index=True
    )
    at: Mapped[datetime] = mapped_column(default=utcnow)
    kind: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(128))
    message: Mapped[str] = mapped_column(Text)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class RolloutAnalysis(Base):
    """Canary against stable at one moment of a step: the numbers behind charts and verdicts."""

    __tablename__ = "rollout_analyses"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    rollout_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("rollouts.id", ondelete="CASCADE"), index=True
    )
    at: Mapped[datetime] = mapped_column(default=utcnow)
    step: Mapped[int] = mapped_column(Integer)
    verdict: Mapped[str] = mapped_column(String(8))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
