"""Versioned MQTT payloads between agents and the control plane.

Every message carries ``schema_version``. Events carry a unique ``event_id`` (UUID):
the control plane stores each (device id, event id) once and confirms stored ids
back on the device's ``confirmations`` topic; the agent deletes an outbox entry only
on that confirmation.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Final, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from edge_agent.protocol.transaction import Transaction

SCHEMA_VERSION: Final = 1
# Fixed bins of the score histogram in telemetry: [0, 0.05), [0.05, 0.1), ... [0.95, 1].
SCORE_HISTOGRAM_BINS: Final = 20
MAX_EVENTS_PER_MESSAGE: Final = 500

ModelVersion = Annotated[str, StringConstraints(min_length=1, max_length=64)]


class WireModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ScoredEvent(WireModel):
    """A transaction as the device scored it: what retraining learns from."""

    event_id: uuid.UUID
    transaction: Transaction
    features: list[float] = Field(description="The feature vector the model saw.")
    feature_spec_version: int = Field(ge=1)
    score: float = Field(ge=0.0, le=1.0, allow_inf_nan=False)
    threshold: float = Field(ge=0.0, le=1.0)
    flagged: bool
    model_version: ModelVersion
    scored_at: AwareDatetime


class EventBatch(WireModel):
    """Payload of ``.../anomalies`` and ``.../samples``: one or more scored events."""

    schema_version: Literal[1] = SCHEMA_VERSION
    device_id: str
    sent_at: AwareDatetime
    events: list[ScoredEvent] = Field(min_length=1, max_length=MAX_EVENTS_PER_MESSAGE)


class LatencySummary(WireModel):
    p50_ms: float = Field(ge=0)
    p95_ms: float = Field(ge=0)
    p99_ms: float = Field(ge=0)


class OutboxSummary(WireModel):
    depth: int = Field(ge=0, description="Entries waiting for confirmation.")
    dropped_samples: int = Field(ge=0, description="Since the agent started.")
    dropped_anomalies: int = Field(ge=0, description="Since the agent started.")


class Telemetry(WireModel):
    """Payload of ``.../telemetry``: health and per-model metrics over one window."""

    schema_version: Literal[1] = SCHEMA_VERSION
    event_id: uuid.UUID
    device_id: str
    sent_at: AwareDatetime
    window_seconds: float = Field(gt=0)
    agent_version: str
    model_version: ModelVersion | None
    feature_spec_version: int
    scored: int = Field(ge=0)
    flagged: int = Field(ge=0)
    inference_errors: int = Field(ge=0)
    model_load_failures: int = Field(ge=0)
    latency: LatencySummary
    score_histogram: list[int] = Field(
        min_length=SCORE_HISTOGRAM_BINS, max_length=SCORE_HISTOGRAM_BINS
    )
    outbox: OutboxSummary
    last_update: str | None = Field(
        default=None, description="What the agent last did about its desired model, if anything."
    )


class DesiredModel(WireModel):
    name: str
    version: ModelVersion
    url: str = Field(description="Where to download model.tflite (authenticated).")
    manifest_url: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    signature: str = Field(description="Base64 Ed25519 signature of manifest.json.")
    feature_spec_version: int


class DesiredState(WireModel):
    """Payload of ``.../desired`` (retained) and of ``GET /api/v1/agent/desired``."""

    schema_version: Literal[1] = SCHEMA_VERSION
    device_id: str
    generation: int = Field(ge=0, description="Grows with every change; older ones are ignored.")
    model: DesiredModel | None
    rollout_id: str | None = None
    issued_at: AwareDatetime


class Confirmation(WireModel):
    """Payload of ``.../confirmations``: these events are stored (or were already)."""

    schema_version: Literal[1] = SCHEMA_VERSION
    device_id: str
    event_ids: list[uuid.UUID]
    stored_at: datetime


class DeviceStatus(WireModel):
    """Payload of ``.../status`` (retained; the last will says offline)."""

    schema_version: Literal[1] = SCHEMA_VERSION
    device_id: str
    online: bool
    at: AwareDatetime | None = None
