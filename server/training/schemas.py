from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import AwareDatetime, Field

from server.common.schemas import ReadModel, RequestModel
from server.training.gate import GateResult
from server.training.orm import RunState, RunTrigger


class TrainingRunCreate(RequestModel):
    """Ask for a retrain now. Without a window it trains on the last
    ``training.window_days`` days."""

    window_start: AwareDatetime | None = None
    window_end: AwareDatetime | None = Field(default=None, description="Default: now.")
    note: str | None = Field(default=None, max_length=1000)


class TrainingRunRead(ReadModel):
    id: uuid.UUID
    trigger: RunTrigger
    evidence: dict[str, Any] = Field(description="What fired the run, with its numbers.")
    requested_by: str
    note: str | None
    state: RunState
    model_name: str
    window_start: datetime
    window_end: datetime
    snapshot_key: str | None
    model_id: uuid.UUID | None = Field(description="The registered candidate, if it passed.")
    model_label: str | None = Field(default=None, description="Its label, such as fraud-3.")
    gate: GateResult | None = Field(
        description="The gate's verdict, with both models' numbers on the held-out slice."
    )
    reason: str | None = Field(description="Why the run was rejected or skipped.")
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class TrainingRunList(ReadModel):
    items: list[TrainingRunRead]
    next_cursor: str | None
