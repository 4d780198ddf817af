from __future__ import annotations

import base64
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from server.auth.deps import ViewerActor
from server.common.pagination import PageParams, page_params
from server.core.db import SessionDep
from server.core.errors import InvalidInput
from server.ingest import service as ingest_service
from server.ingest.schemas import DeadLetterCounts, DeadLetterDetail, DeadLetterList, DeadLetterRead

router = APIRouter(tags=["ingest"])


@router.get("/dead-letters", operation_id="ingest-list-dead-letters", response_model=DeadLetterList)
def list_dead_letters(
    session: SessionDep,
    _: ViewerActor,
    page: Annotated[PageParams, Depends(page_params)],
    reason: ingest_service.Reason | None = None,
    device_id: Annotated[
        str | None, Query(max_length=128, description="The device id as the topic named it.")
    ] = None,
    since: datetime | None = None,
) -> DeadLetterList:
    """Messages ingest refused, newest first."""
    if since is not None and since.tzinfo is None:
        raise InvalidInput("since needs a time zone (for example 2026-12-03T10:00:00Z)")
    filters = ingest_service.DeadLetterFilters(
        reason=reason, topic_device_id=device_id, since=since
    )
    items, cursor = ingest_service.list_dead_letters(session, filters=filters, params=page)
    return DeadLetterList(
        items=[DeadLetterRead.model_validate(d) for d in items], next_cursor=cursor
    )


@router.get(
    "/dead-letters/counts",
    operation_id="ingest-count-dead-letters",
    response_model=DeadLetterCounts,
)
def count_dead_letters(session: SessionDep, _: ViewerActor) -> DeadLetterCounts:
    return DeadLetterCounts(by_reason=ingest_service.count_dead_letters_by_reason(session))


@router.get(
    "/dead-letters/{dead_letter_id}",
    operation_id="ingest-get-dead-letter",
    response_model=DeadLetterDetail,
)
def get_dead_letter(session: SessionDep, _: ViewerActor, dead_letter_id: int) -> DeadLetterDetail:
    record = ingest_service.get_dead_letter(session, dead_letter_id)
    try:
        text: str | None = record.payload.decode()
    except UnicodeDecodeError:
        text = None
    return DeadLetterDetail(
        **DeadLetterRead.model_validate(record).model_dump(),
        payload_base64=base64.b64encode(record.payload).decode(),
        payload_text=text,
    )
