from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from server.core.db import Base, str_enum, utcnow


class RunTrigger(StrEnum):
    ON_DEMAND = "on_demand"
    SCHEDULE = "schedule"
    DRIFT = "drift"


class RunState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    REGISTERED = "registered"
    """The candidate passed the gate and is in the registry (``model_id``)."""
    REJECTED = "rejected"
    """The candidate failed the gate; ``gate`` says why."""
    FAILED = "failed"
    SKIPPED = "skipped"
    """Not run: another run held the lock (``reason``)."""


FINISHED_STATES = frozenset(
    {RunState.REGISTERED, RunState.REJECTED, RunState.FAILED, RunState.SKIPPED}
)


class TrainingRun(Base):
    """One retraining: why it was asked for (trigger and evidence), and how it ended.

    ``running_lock`` is the lock: True while the run is running, NULL otherwise. Its
    unique constraint (NULLs never collide) lets only one run hold it, whatever two
    workers race.
    """

    __tablename__ = "training_runs"
    __table_args__ = (Index("ix_training_runs_trigger_created_at", "trigger", "created_at"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    trigger: Mapped[RunTrigger] = mapped_column(str_enum(RunTrigger, "training_run_trigger"))
    evidence: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    requested_by: Mapped[str] = mapped_column(String(128))
    note: Mapped[str | None] = mapped_column(Text)
    state: Mapped[RunState] = mapped_column(
        str_enum(RunState, "training_run_state"), default=RunState.QUEUED, index=True
    )
    running_lock: Mapped[bool | None] = mapped_column(unique=True)
    model_name: Mapped[str] = mapped_column(String(64))
    window_start: Mapped[datetime]
    window_end: Mapped[datetime]
    snapshot_key: Mapped[str | None] = mapped_column(String(256))
    model_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("model_versions.id", ondelete="SET NULL")
    )
    gate: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    reason: Mapped[str | None] = mapped_column(Text)
    """Why it ended as it did: the gate's verdict or why it was skipped."""
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
