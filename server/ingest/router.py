from __future__ import annotations

import base64
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from server.auth.deps import ViewerActor
from server.common.pagination import PageParams, page_params
from server.core.db import SessionDep
from server.core.errors import InvalidInput
from server.devices.deps import DeviceDep
from server.ingest import service as ingest_service
from server.ingest.orm import TelemetryWindow
from server.ingest.schemas import (
    DeadLetterCounts,
    DeadLetterDetail,
    DeadLetterList,
    DeadLetterRead,
    DeviceTelemetry,
    TelemetryPoint,
)

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


def _telemetry_point(window: TelemetryWindow) -> TelemetryPoint:
    depth = window.outbox.get("depth")
    return TelemetryPoint(
        sent_at=window.sent_at,
        window_seconds=window.window_seconds,
        model_version=window.model_version,
        scored=window.scored,
        flagged=window.flagged,
        flag_rate=window.flagged / window.scored if window.scored else None,
        inference_errors=window.inference_errors,
        model_load_failures=window.model_load_failures,
        latency_p50_ms=window.latency_p50_ms,
        latency_p95_ms=window.latency_p95_ms,
        outbox_depth=depth if isinstance(depth, int) else None,
    )


@router.get(
    "/devices/{device_id}/telemetry",
    operation_id="ingest-device-telemetry",
    response_model=DeviceTelemetry,
)
def device_telemetry(
    session: SessionDep,
    _: ViewerActor,
    device: DeviceDep,
    minutes: Annotated[int, Query(ge=1, le=10_080, description="How many minutes back.")] = 60,
) -> DeviceTelemetry:
    """The device's telemetry windows, oldest first: latency, flag rate, outbox depth."""
    windows = ingest_service.device_telemetry(session, device.id, minutes=minutes)
    return DeviceTelemetry(
        device_id=device.id, minutes=minutes, items=[_telemetry_point(w) for w in windows]
    )
