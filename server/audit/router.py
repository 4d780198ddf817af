from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends

from server.audit import service as audit_service
from server.audit.schemas import AuditEventList, AuditEventRead
from server.auth.deps import ViewerActor
from server.common.pagination import PageParams, page_params
from server.core.db import SessionDep

router = APIRouter(prefix="/audit-events", tags=["audit"])


@router.get("", operation_id="audit-list", response_model=AuditEventList)
def list_audit_events(
    session: SessionDep,
    _: ViewerActor,
    page: Annotated[PageParams, Depends(page_params)],
    action: str | None = None,
    target_type: str | None = None,
    target_id: str | None = None,
    since: datetime | None = None,
) -> AuditEventList:
    events, cursor = audit_service.list_events(
        session,
        params=page,
        action=action,
        target_type=target_type,
        target_id=target_id,
        since=since,
    )
    return AuditEventList(
        items=[AuditEventRead.model_validate(e) for e in events], next_cursor=cursor
    )
