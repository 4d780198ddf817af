from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Request, UploadFile
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from server.anomalies import service as anomalies_service
from server.anomalies.deps import StreamSessions
from server.anomalies.exceptions import ChargebackFileInvalid
from server.anomalies.orm import EventKind, ScoredEvent
from server.anomalies.schemas import (
    AnomalyRate,
    BulkLabelResult,
    BulkLabelUpdate,
    ChargebackImport,
    ChargebackReport,
    LabelFilter,
    LabelUpdate,
    RatePoint,
    ScoredEventList,
    ScoredEventRead,
    TransactionRead,
)
from server.auth.deps import OperatorActor, ViewerActor
from server.common.pagination import PageParams, page_params
from server.core.db import SessionDep
from server.core.errors import InvalidInput

router = APIRouter(tags=["anomalies"])

MAX_CSV_BYTES = 20 * 1024 * 1024
STREAM_POLL_SECONDS = 1.0
STREAM_KEEPALIVE_SECONDS = 15.0
STREAM_MAX_SECONDS = 300.0
STREAM_BATCH = 200


def to_read(event: ScoredEvent) -> ScoredEventRead:
    return ScoredEventRead(
        id=event.id,
        kind=event.kind,
        device_id=event.device_id,
        cluster_id=event.cluster_id,
        event_id=event.event_id,
        received_at=event.received_at,
        scored_at=event.scored_at,
        model_version=event.model_version,
        feature_spec_version=event.feature_spec_version,
        features=anomalies_service.decode_features(event.features),
        score=event.score,
        threshold=event.threshold,
        flagged=event.flagged,
        transaction=TransactionRead(
            transaction_id=event.transaction_id,
            store_id=event.store_id,
            terminal_id=event.terminal_id,
            card_token=event.card_token,
            amount=event.amount,
            currency=event.currency,
            merchant_category=event.merchant_category,
            timestamp=event.transaction_at,
            latitude=event.latitude,
            longitude=event.longitude,
        ),
        label=event.label,
        label_source=event.label_source,
        labelled_at=event.labelled_at,
        labelled_by=event.labelled_by,
    )


def event_filters(
    kind: Annotated[
        EventKind | None, Query(description="anomaly (default) or sample.")
    ] = EventKind.ANOMALY,
    device_id: uuid.UUID | None = None,
    cluster_id: uuid.UUID | None = None,
    model_version: Annotated[str | None, Query(max_length=64)] = None,
    min_score: Annotated[float | None, Query(ge=0, le=1)] = None,
    max_score: Annotated[float | None, Query(ge=0, le=1)] = None,
    label: LabelFilter | None = None,
    transaction_id: Annotated[str | None, Query(max_length=128)] = None,
    since: Annotated[datetime | None, Query(description="Scored at or after.")] = None,
    until: Annotated[datetime | None, Query(description="Scored before.")] = None,
) -> anomalies_service.EventFilters:
    for name, value in (("since", since), ("until", until)):
        if value is not None and value.tzinfo is None:
            raise InvalidInput(f"{name} needs a time zone (for example 2026-12-03T10:00:00Z)")
    return anomalies_service.EventFilters(
        kind=kind,
        device_id=device_id,
        cluster_id=cluster_id,
        model_version=model_version,
        min_score=min_score,
        max_score=max_score,
        label=label,
        transaction_id=transaction_id,
        since=since,
        until=until,
    )


Filters = Annotated[anomalies_service.EventFilters, Depends(event_filters)]


@router.get("/anomalies", operation_id="anomalies-list", response_model=ScoredEventList)
def list_anomalies(
    session: SessionDep,
    _: ViewerActor,
    page: Annotated[PageParams, Depends(page_params)],
    filters: Filters,
) -> ScoredEventList:
    """Scored events, newest first: anomalies by default, samples with kind=sample."""
    items, cursor = anomalies_service.list_events(session, filters=filters, params=page)
    return ScoredEventList(items=[to_read(e) for e in items], next_cursor=cursor)


@router.get(
    "/anomalies/stream",
    operation_id="anomalies-stream",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def stream_anomalies(
    request: Request,
    _: ViewerActor,
    sessions: StreamSessions,
    filters: Filters,
    after: Annotated[
        int | None, Query(ge=0, description="Send events stored after this id (default: now).")
    ] = None,
    last_event_id: Annotated[str | None, Header()] = None,
    max_events: Annotated[
        int | None, Query(ge=1, le=10_000, description="Close the stream after this many.")
    ] = None,
) -> StreamingResponse:
    """New anomalies as server-sent events (``event: anomaly``, ``id`` = the event's id).

    The stream closes after a few minutes; EventSource reconnects by itself and resumes
    from the Last-Event-ID it saw.
    """
    cursor = after
    if last_event_id is not None and last_event_id.strip().isdigit():
        cursor = int(last_event_id.strip())

    def poll(after_id: int | None) -> tuple[int, list[ScoredEventRead]]:
        with sessions() as session:
            if after_id is None:
                return anomalies_service.latest_id(session), []
            events = anomalies_service.events_after(
                session, after_id=after_id, filters=filters, limit=STREAM_BATCH
            )
            return (events[-1].id if events else after_id), [to_read(e) for e in events]

    async def events() -> AsyncIterator[str]:
        nonlocal cursor
        sent = 0
        started = last_output = time.monotonic()
        yield f"retry: {int(STREAM_POLL_SECONDS * 3000)}\n\n"
        while time.monotonic() - started < STREAM_MAX_SECONDS:
            cursor, batch = await run_in_threadpool(poll, cursor)
            for item in batch:
                data = json.dumps(item.model_dump(mode="json"), separators=(",", ":"))
                yield f"id: {item.id}\nevent: anomaly\ndata: {data}\n\n"
                last_output = time.monotonic()
                sent += 1
                if max_events is not None and sent >= max_events:
                    return
            if len(batch) == STREAM_BATCH:
                continue
            if await request.is_disconnected():
                return
            if time.monotonic() - last_output > STREAM_KEEPALIVE_SECONDS:
                yield ": keep-alive\n\n"
                last_output = time.monotonic()
            await asyncio.sleep(STREAM_POLL_SECONDS)

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@router.get("/anomalies/rate", operation_id="anomalies-rate", response_model=AnomalyRate)
def anomaly_rate(
    session: SessionDep,
    _: ViewerActor,
    minutes: Annotated[int, Query(ge=1, le=1440, description="How many minutes back.")] = 60,
) -> AnomalyRate:
    """Anomalies per minute over the last minutes, by scoring time, zero-filled."""
    points = [
        RatePoint(minute=minute, count=count)
        for minute, count in anomalies_service.anomaly_rate(session, minutes=minutes)
    ]
    return AnomalyRate(minutes=minutes, total=sum(p.count for p in points), points=points)


@router.get("/anomalies/{anomaly_id}", operation_id="anomalies-get", response_model=ScoredEventRead)
def get_anomaly(session: SessionDep, _: ViewerActor, anomaly_id: int) -> ScoredEventRead:
    return to_read(anomalies_service.get_event(session, anomaly_id))


@router.put(
    "/anomalies/{anomaly_id}/label",
    operation_id="anomalies-set-label",
    response_model=ScoredEventRead,
)
def set_label(
    session: SessionDep, actor: OperatorActor, anomaly_id: int, body: LabelUpdate
) -> ScoredEventRead:
    """Label one event confirmed_fraud or false_positive (null clears it)."""
    anomalies_service.get_event(session, anomaly_id)
    anomalies_service.label_events(session, actor=actor, ids=[anomaly_id], label=body.label)
    return to_read(anomalies_service.get_event(session, anomaly_id))


@router.post("/anomalies/labels", operation_id="anomalies-label", response_model=BulkLabelResult)
def label_many(session: SessionDep, actor: OperatorActor, body: BulkLabelUpdate) -> BulkLabelResult:
    """Label many events at once; ids that match nothing are listed, not an error."""
    result = anomalies_service.label_events(session, actor=actor, ids=body.ids, label=body.label)
    return BulkLabelResult(updated=result.updated, missing=result.missing)


@router.post(
    "/chargebacks", operation_id="anomalies-import-chargebacks", response_model=ChargebackReport
)
def import_chargebacks(
    session: SessionDep, actor: OperatorActor, body: ChargebackImport
) -> ChargebackReport:
    """Mark the events of charged-back transactions as confirmed fraud (by transaction_id)."""
    result = anomalies_service.import_chargebacks(
        session, actor=actor, chargebacks=body.chargebacks
    )
    return ChargebackReport(
        received=result.received,
        matched=result.matched,
        events_labelled=result.events_labelled,
        unmatched=result.unmatched,
    )


@router.post(
    "/chargebacks/csv",
    operation_id="anomalies-import-chargebacks-csv",
    response_model=ChargebackReport,
)
def import_chargebacks_csv(
    session: SessionDep, actor: OperatorActor, file: UploadFile
) -> ChargebackReport:
    """The same from a CSV upload (multipart field ``file``; columns transaction_id, reason)."""
    data = file.file.read(MAX_CSV_BYTES + 1)
    if len(data) > MAX_CSV_BYTES:
        raise ChargebackFileInvalid(f"the CSV file is over {MAX_CSV_BYTES} bytes")
    chargebacks = anomalies_service.parse_chargeback_csv(data)
    result = anomalies_service.import_chargebacks(session, actor=actor, chargebacks=chargebacks)
    return ChargebackReport(
        received=result.received,
        matched=result.matched,
        events_labelled=result.events_labelled,
        unmatched=result.unmatched,
    )
