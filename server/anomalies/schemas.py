from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from pydantic import Field

from server.anomalies.orm import EventKind, Label, LabelSource
from server.common.schemas import ReadModel, RequestModel

MAX_LABELS_PER_REQUEST = 1000
MAX_CHARGEBACKS_PER_REQUEST = 50_000


class LabelFilter(StrEnum):
    CONFIRMED_FRAUD = "confirmed_fraud"
    FALSE_POSITIVE = "false_positive"
    UNLABELLED = "unlabelled"


class TransactionRead(ReadModel):
    transaction_id: str
    store_id: str
    terminal_id: str
    card_token: str
    amount: float
    currency: str
    merchant_category: str
    timestamp: datetime
    latitude: float
    longitude: float


class ScoredEventRead(ReadModel):
    id: int
    kind: EventKind
    device_id: uuid.UUID
    cluster_id: uuid.UUID | None
    event_id: uuid.UUID
    received_at: datetime
    scored_at: datetime
    model_version: str
    feature_spec_version: int
    features: list[float]
    score: float
    threshold: float
    flagged: bool
    transaction: TransactionRead
    label: Label | None
    label_source: LabelSource | None
    labelled_at: datetime | None
    labelled_by: str | None


class ScoredEventList(ReadModel):
    items: list[ScoredEventRead]
    next_cursor: str | None


class LabelUpdate(RequestModel):
    label: Label | None = Field(description="null clears the label.")


class BulkLabelUpdate(RequestModel):
    ids: list[int] = Field(min_length=1, max_length=MAX_LABELS_PER_REQUEST)
    label: Label | None = Field(description="null clears the labels.")


class BulkLabelResult(ReadModel):
    updated: int
    missing: list[int] = Field(description="Ids that match no stored event.")


class ChargebackCreate(RequestModel):
    transaction_id: str = Field(min_length=1, max_length=128)
    reason: str | None = Field(default=None, max_length=256)


class ChargebackImport(RequestModel):
    chargebacks: list[ChargebackCreate] = Field(
        min_length=1, max_length=MAX_CHARGEBACKS_PER_REQUEST
    )


class ChargebackReport(ReadModel):
    received: int = Field(description="Distinct transaction ids in the import.")
    matched: int = Field(description="Transaction ids that match at least one stored event.")
    events_labelled: int = Field(description="Stored events now labelled confirmed_fraud.")
    unmatched: list[str] = Field(
        description="Transaction ids no device reported (the model missed them, or they were "
        "not sampled)."
    )


class RatePoint(ReadModel):
    minute: datetime = Field(description="The start of the minute (UTC).")
    count: int


class AnomalyRate(ReadModel):
    """Anomalies per minute by scoring time, oldest first; the newest minute is in progress."""

    minutes: int
    total: int
    points: list[RatePoint]
