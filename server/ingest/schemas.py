from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import Field

from server.common.schemas import ReadModel


class DeadLetterRead(ReadModel):
    id: int
    received_at: datetime
    topic: str
    topic_device_id: str | None
    reason: str
    detail: str
    payload_size: int
    truncated: bool


class DeadLetterDetail(DeadLetterRead):
    payload_base64: str = Field(description="The raw bytes kept (truncated when `truncated`).")
    payload_text: str | None = Field(description="The same as UTF-8 text, when it is text.")


class DeadLetterList(ReadModel):
    items: list[DeadLetterRead]
    next_cursor: str | None


class DeadLetterCounts(ReadModel):
    by_reason: dict[str, int]


class TelemetryPoint(ReadModel):
    """One telemetry window of a device, as the charts of its page show it."""

    sent_at: datetime
    window_seconds: float
    model_version: str | None
    scored: int
    flagged: int
    flag_rate: float | None = Field(description="flagged / scored; null when nothing was scored.")
    inference_errors: int
    model_load_failures: int
    latency_p50_ms: float
    latency_p95_ms: float
    outbox_depth: int | None = Field(description="Entries waiting in the device's outbox.")


class DeviceTelemetry(ReadModel):
    device_id: uuid.UUID
    minutes: int
    items: list[TelemetryPoint] = Field(description="Oldest first; at most the newest 500.")
