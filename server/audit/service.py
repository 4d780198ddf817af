"""The audit log: every change made through a service is recorded here."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.audit.orm import AuditEvent
from server.common.actor import Actor
from server.common.pagination import PageParams, paginate


def record(
    session: Session,
    *,
    actor: Actor,
    action: str,
    target_type: str,
    target_id: object | None = None,
    details: dict[str, Any] | None = None,
) -> AuditEvent:
    event = AuditEvent(
        actor_kind=actor.kind.value,
        actor_id=actor.id,
        actor_name=actor.name,
        action=action,
        target_type=target_type,
        target_id=None if target_id is None else str(target_id),
        details=details or {},
        ip=actor.ip,
        request_id=actor.request_id,
    )
    session.add(event)
    return event


def list_events(
    session: Session,
    *,
    params: PageParams,
    action: str | None = None,
    target_type: str | None = None,
    target_id: str | None = None,
    since: datetime | None = None,
) -> tuple[list[AuditEvent], str | None]:
    statement = select(AuditEvent)
    if action:
        statement = statement.where(AuditEvent.action == action)
    if target_type:
        statement = statement.where(AuditEvent.target_type == target_type)
    if target_id:
        statement = statement.where(AuditEvent.target_id == target_id)
    if since:
        statement = statement.where(AuditEvent.at >= since)
    return paginate(session, statement, order_by=[AuditEvent.id], params=params, descending=True)
