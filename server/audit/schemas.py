from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from server.common.schemas import ReadModel


class AuditEventRead(ReadModel):
    id: int
    at: datetime
    actor_kind: str
    actor_id: uuid.UUID | None
    actor_name: str
    action: str
    target_type: str
    target_id: str | None
    details: dict[str, Any]
    ip: str | None
    request_id: str | None


class AuditEventList(ReadModel):
    items: list[AuditEventRead]
    next_cursor: str | None
