from __future__ import annotations

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
