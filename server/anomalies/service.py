"""Scored events (anomalies and samples): the fast write path of ingest, listing, labels.

Writes are idempotent per (device id, event id): ingest may store the same batch again
after a redelivery, and only new rows are added.
"""

from __future__ import annotations

import csv
import io
import logging
import struct
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from sqlalchemy import func, select, update
from sqlalchemy.dialects import sqlite
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from edge_agent.protocol.messages import ScoredEvent as WireEvent
from server.anomalies.exceptions import ChargebackFileInvalid, ScoredEventNotFound
from server.anomalies.orm import EventKind, Label, LabelSource, ScoredEvent
from server.anomalies.schemas import ChargebackCreate, LabelFilter
from server.audit import service as audit_service
from server.common.actor import Actor
from server.common.pagination import PageParams, paginate
from server.core.db import utcnow

logger = logging.getLogger(__name__)

# The columns ingest writes, in the order of the tuples built by event_rows().
STORE_COLUMNS: Final = (
    "kind",
    "device_id",
    "cluster_id",
    "event_id",
    "received_at",
    "scored_at",
    "model_version",
    "feature_spec_version",
    "features",
    "score",
    "threshold",
    "flagged",
    "transaction_id",
    "store_id",
    "terminal_id",
    "card_token",
    "amount",
    "currency",
    "merchant_category",
    "transaction_at",
    "latitude",
    "longitude",
)
EventRow = tuple[Any, ...]
# PostgreSQL types of STORE_COLUMNS, for binary COPY.
_BINARY_TYPES: Final = (
    "text",
    "uuid",
    "uuid",
    "uuid",
    "timestamptz",
    "timestamptz",
    "text",
    "int4",
    "bytea",
    "float8",
    "float8",
    "bool",
    "text",
    "text",
    "text",
    "text",
    "float8",
    "text",
    "text",
    "timestamptz",
    "float8",
    "float8",
)

_STAGING = "scored_events_staging"
_COLUMN_LIST = ", ".join(STORE_COLUMNS)
_MATCH_CHUNK = 500


def encode_features(features: Sequence[float]) -> bytes:
    return struct.pack(f"<{len(features)}f", *features)


def decode_features(blob: bytes) -> list[float]:
    return list(struct.unpack(f"<{len(blob) // 4}f", blob))


def event_rows(
    kind: EventKind,
    device_id: uuid.UUID,
    cluster_id: uuid.UUID | None,
    received_at: datetime,
    events: Iterable[WireEvent],
) -> list[EventRow]:
    """Stored rows from validated wire events: plain tuples, as this runs for every event."""
    kind_value = kind.value
    return [
        (
            kind_value,
            device_id,
            cluster_id,
            event.event_id,
            received_at,
            event.scored_at,
            event.model_version,
            event.feature_spec_version,
            encode_features(event.features),
            event.score,
            event.threshold,
            event.flagged,
            (tx := event.transaction).transaction_id,
            tx.store_id,
            tx.terminal_id,
            tx.card_token,
            tx.amount,
            tx.currency,
            tx.merchant_category,
            tx.timestamp,
            tx.latitude,
            tx.longitude,
        )
        for event in events
    ]


def store_events(session: Session, rows: Sequence[EventRow]) -> int:
    """Insert the rows that are not stored yet; returns how many were new.

    PostgreSQL: COPY into a session-local staging table, then one INSERT ... SELECT ...
    ON CONFLICT DO NOTHING (COPY is several times faster than any INSERT). SQLite: one
    executemany of INSERT ... ON CONFLICT DO NOTHING.
    """
    if not rows:
        return 0
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        return _copy_events(session, rows)
    statement = sqlite.insert(ScoredEvent).on_conflict_do_nothing(
        index_elements=["device_id", "event_id"]
    )
    # total_changes() counts this connection's inserted rows; ignored conflicts add none.
    before = int(session.scalar(select(func.total_changes())) or 0)
    session.execute(statement, [dict(zip(STORE_COLUMNS, row, strict=True)) for row in rows])
    return int(session.scalar(select(func.total_changes())) or 0) - before


def _copy_events(session: Session, rows: Sequence[EventRow]) -> int:
    """COPY (binary) straight into the table; if a row is already there (a redelivery),
    COPY the batch into a staging table instead and insert what is new from there."""
    import psycopg

    connection = session.connection()
    pooled = connection.connection
    driver = pooled.driver_connection
    dialect = connection.dialect
    assert isinstance(driver, psycopg.Connection)
    try:
        with driver.cursor() as cursor:
            try:
                with driver.transaction():  # a savepoint: a refused COPY leaves no trace
                    _copy(cursor, "scored_events", rows)
                return len(rows)
            except psycopg.errors.UniqueViolation:
                pass
            # Temporary: private to this connection, so concurrent ingest processes never
            # see each other's rows. Created inside the transaction, so asked for every
            # time: a rolled-back batch takes the table with it.
            cursor.execute(
                f"CREATE TEMPORARY TABLE IF NOT EXISTS {_STAGING} AS "  # noqa: S608
                f"SELECT {_COLUMN_LIST} FROM scored_events WITH NO DATA"
            )
            _copy(cursor, _STAGING, rows)
            cursor.execute(
                f"INSERT INTO scored_events ({_COLUMN_LIST}) "  # noqa: S608
                f"SELECT {_COLUMN_LIST} FROM {_STAGING} "
                "ON CONFLICT (device_id, event_id) DO NOTHING"
            )
            inserted = int(cursor.rowcount)
            cursor.execute(f"TRUNCATE {_STAGING}")
    except psycopg.Error as exc:
        # The driver was used directly: raise what SQLAlchemy would have raised.
        lost = driver.broken
        if lost:
            pooled.invalidate(exc)
        raise DBAPIError.instance(
            "COPY scored_events",
            None,
            exc,
            psycopg.Error,
            connection_invalidated=lost,
            dialect=dialect,
        ) from exc
    return max(inserted, 0)


def _copy(cursor: Any, table: str, rows: Sequence[EventRow]) -> None:
    with cursor.copy(f"COPY {table} ({_COLUMN_LIST}) FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(_BINARY_TYPES)
        for row in rows:
            copy.write_row(row)


@dataclass(frozen=True, slots=True)
class EventFilters:
    kind: EventKind | None = EventKind.ANOMALY
    device_id: uuid.UUID | None = None
    cluster_id: uuid.UUID | None = None
    model_version: str | None = None
    min_score: float | None = None
    max_score: float | None = None
    label: LabelFilter | None = None
    transaction_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def _filtered(filters: EventFilters) -> Any:
    statement = select(ScoredEvent)
    if filters.kind is not None:
        statement = statement.where(ScoredEvent.kind == filters.kind)
    if filters.device_id is not None:
        statement = statement.where(ScoredEvent.device_id == filters.device_id)
    if filters.cluster_id is not None:
        statement = statement.where(ScoredEvent.cluster_id == filters.cluster_id)
    if filters.model_version is not None:
        statement = statement.where(ScoredEvent.model_version == filters.model_version)
    if filters.min_score is not None:
        statement = statement.where(ScoredEvent.score >= filters.min_score)
    if filters.max_score is not None:
        statement = statement.where(ScoredEvent.score <= filters.max_score)
    if filters.label is LabelFilter.UNLABELLED:
        statement = statement.where(ScoredEvent.label.is_(None))
    elif filters.label is not None:
        statement = statement.where(ScoredEvent.label == Label(filters.label.value))
    if filters.transaction_id is not None:
        statement = statement.where(ScoredEvent.transaction_id == filters.transaction_id)
    if filters.since is not None:
        statement = statement.where(ScoredEvent.scored_at >= filters.since)
    if filters.until is not None:
        statement = statement.where(ScoredEvent.scored_at < filters.until)
    return statement


def list_events(
    session: Session, *, filters: EventFilters, params: PageParams
) -> tuple[list[ScoredEvent], str | None]:
    """Newest first."""
    return paginate(
        session, _filtered(filters), order_by=[ScoredEvent.id], params=params, descending=True
    )


def events_after(
    session: Session, *, after_id: int, filters: EventFilters, limit: int
) -> list[ScoredEvent]:
    """Events stored after ``after_id``, oldest first: what a live stream sends next."""
    statement = _filtered(filters).where(ScoredEvent.id > after_id)
    return list(session.scalars(statement.order_by(ScoredEvent.id).limit(limit)))


def latest_id(session: Session) -> int:
    return int(session.scalar(select(func.max(ScoredEvent.id))) or 0)


def get_event(session: Session, event_id: int) -> ScoredEvent:
    event = session.get(ScoredEvent, event_id)
    if event is None:
        raise ScoredEventNotFound(f"scored event {event_id} does not exist")
    return event


@dataclass(frozen=True, slots=True)
class TrainingRow:
    """What retraining needs of one stored event."""

    anomaly: bool
    """Flagged by the device (an anomaly), rather than a random sample."""
    transaction_at: datetime
    feature_spec_version: int
    features: bytes
    """float32, little-endian, as stored (see :func:`decode_features`)."""
    fraud: bool | None
    """True: confirmed fraud (by an operator or a chargeback); False: a false positive;
    None: nobody labelled it."""
    label_source: str | None
    """``operator`` or ``chargeback`` when labelled."""


def training_rows(
    session: Session, *, start: datetime, end: datetime, batch_size: int = 5_000
) -> Iterator[TrainingRow]:
    """Anomalies and samples with a transaction time in ``[start, end)``, oldest first.

    Streamed in batches (a server-side cursor on PostgreSQL), so a range of millions of
    rows never sits in memory as ORM objects.
    """
    statement = (
        select(
            ScoredEvent.kind,
            ScoredEvent.transaction_at,
            ScoredEvent.feature_spec_version,
            ScoredEvent.features,
            ScoredEvent.label,
            ScoredEvent.label_source,
        )
        .where(ScoredEvent.transaction_at >= start, ScoredEvent.transaction_at < end)
        .order_by(ScoredEvent.transaction_at, ScoredEvent.id)
        .execution_options(yield_per=batch_size)
    )
    for kind, transaction_at, spec, features, label, source in session.execute(statement):
        yield TrainingRow(
            anomaly=kind is EventKind.ANOMALY,
            transaction_at=transaction_at,
            feature_spec_version=spec,
            features=features,
            fraud=None if label is None else label is Label.CONFIRMED_FRAUD,
            label_source=None if source is None else source.value,
        )


@dataclass(frozen=True, slots=True)
class LabelResult:
    updated: int
    missing: list[int]


def received_count(
    session: Session,
    *,
    kind: EventKind,
    since: datetime,
    until: datetime,
    model_version: str | None = None,
    fraud: bool = False,
) -> int:
    """Events received in [since, until), of one model if given, only those labelled
    fraud if asked.

    By arrival, like telemetry windows, so that samples and the traffic they were drawn
    from are counted over the same stretch of time (a device that scores a backlog
    uploads old transactions now)."""
    statement = select(func.count()).where(
        ScoredEvent.kind == kind,
        ScoredEvent.received_at >= since,
        ScoredEvent.received_at < until,
    )
    if model_version is not None:
        statement = statement.where(ScoredEvent.model_version == model_version)
    if fraud:
        statement = statement.where(ScoredEvent.label == Label.CONFIRMED_FRAUD)
    return int(session.scalar(statement) or 0)


def samples_received(session: Session, *, since: datetime, until: datetime) -> int:
    """Samples of every model received in [since, until), for other domains' estimates."""
    return received_count(session, kind=EventKind.SAMPLE, since=since, until=until)


def label_events(
    session: Session, *, actor: Actor, ids: Sequence[int], label: Label | None
) -> LabelResult:
    """Set (or clear, with None) the label of each event, as the operator says."""
    wanted = sorted(set(ids))
    found = set(session.scalars(select(ScoredEvent.id).where(ScoredEvent.id.in_(wanted))))
    missing = [i for i in wanted if i not in found]
    if found:
        session.execute(
            update(ScoredEvent)
            .where(ScoredEvent.id.in_(found))
            .values(
                label=label,
                label_source=None if label is None else LabelSource.OPERATOR,
                labelled_at=None if label is None else utcnow(),
                labelled_by=None if label is None else actor.name,
            )
            .execution_options(synchronize_session="fetch")
        )
        audit_service.record(
            session,
            actor=actor,
            action="anomaly.label",
            target_type="scored_event",
            target_id=wanted[0] if len(wanted) == 1 else None,
            details={"label": label.value if label else None, "ids": sorted(found)},
        )
    return LabelResult(updated=len(found), missing=missing)


def parse_chargeback_csv(data: bytes) -> list[ChargebackCreate]:
    """Chargebacks from CSV with a header row; ``transaction_id`` is required, ``reason``
    is optional, other columns are ignored."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ChargebackFileInvalid("the CSV file is not UTF-8") from exc
    reader = csv.DictReader(io.StringIO(text))
    if reader.fieldnames is None or "transaction_id" not in reader.fieldnames:
        raise ChargebackFileInvalid("the CSV file needs a header row with a transaction_id column")
    chargebacks: list[ChargebackCreate] = []
    try:
        for line, record in enumerate(reader, start=2):
            transaction_id = (record.get("transaction_id") or "").strip()
            if not transaction_id:
                raise ChargebackFileInvalid(f"line {line}: transaction_id is empty")
            if len(transaction_id) > 128:
                raise ChargebackFileInvalid(f"line {line}: transaction_id is over 128 characters")
            reason = (record.get("reason") or "").strip()[:256] or None
            chargebacks.append(ChargebackCreate(transaction_id=transaction_id, reason=reason))
    except csv.Error as exc:
        raise ChargebackFileInvalid(f"the CSV file is malformed: {exc}") from exc
    if not chargebacks:
        raise ChargebackFileInvalid("the CSV file holds no chargebacks")
    return chargebacks


@dataclass(frozen=True, slots=True)
class ChargebackResult:
    received: int
    matched: int
    events_labelled: int
    unmatched: list[str]


def import_chargebacks(
    session: Session, *, actor: Actor, chargebacks: Iterable[ChargebackCreate]
) -> ChargebackResult:
    """Label every stored event of a charged-back transaction as confirmed fraud.

    A chargeback is ground truth, so it overrides an operator's label. Anomalies and
    samples both match: a charged-back sample is fraud the model missed.
    """
    transaction_ids = sorted({c.transaction_id for c in chargebacks})
    matched: set[str] = set()
    labelled = 0
    now = utcnow()
    for start in range(0, len(transaction_ids), _MATCH_CHUNK):
        chunk = transaction_ids[start : start + _MATCH_CHUNK]
        matched.update(
            session.scalars(
                select(ScoredEvent.transaction_id)
                .where(ScoredEvent.transaction_id.in_(chunk))
                .distinct()
            )
        )
        result = session.execute(
            update(ScoredEvent)
            .where(ScoredEvent.transaction_id.in_(chunk))
            .values(
                label=Label.CONFIRMED_FRAUD,
                label_source=LabelSource.CHARGEBACK,
                labelled_at=now,
                labelled_by=actor.name,
            )
            .execution_options(synchronize_session=False)
        )
        labelled += int(result.rowcount)  # type: ignore[attr-defined]
    unmatched = [t for t in transaction_ids if t not in matched]
    audit_service.record(
        session,
        actor=actor,
        action="anomaly.import_chargebacks",
        target_type="scored_event",
        details={
            "received": len(transaction_ids),
            "matched": len(matched),
            "events_labelled": labelled,
        },
    )
    logger.info(
        "chargebacks imported: %d received, %d matched, %d events labelled",
        len(transaction_ids),
        len(matched),
        labelled,
    )
    return ChargebackResult(
        received=len(transaction_ids),
        matched=len(matched),
        events_labelled=labelled,
        unmatched=unmatched,
    )


def _minute_bucket(session: Session) -> Any:
    """The scoring minute of an event, as the database can group it."""
    if session.get_bind().dialect.name == "postgresql":
        return func.date_trunc("minute", ScoredEvent.scored_at)
    return func.strftime("%Y-%m-%d %H:%M", ScoredEvent.scored_at)


def _as_minute(value: datetime | str) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def anomaly_rate(
    session: Session, *, minutes: int, now: datetime | None = None
) -> list[tuple[datetime, int]]:
    """Anomalies scored in each of the last ``minutes`` minutes (the current one included),
    oldest first, minutes without any counted as zero."""
    end = (now or utcnow()).astimezone(UTC).replace(second=0, microsecond=0)
    start = end - timedelta(minutes=minutes - 1)
    bucket = _minute_bucket(session).label("minute")
    rows = session.execute(
        select(bucket, func.count())
        .where(
            ScoredEvent.kind == EventKind.ANOMALY,
            ScoredEvent.scored_at >= start,
            ScoredEvent.scored_at < end + timedelta(minutes=1),
        )
        .group_by(bucket)
    )
    counts = {_as_minute(minute): int(count) for minute, count in rows}
    return [
        (minute, counts.get(minute, 0))
        for minute in (start + timedelta(minutes=offset) for offset in range(minutes))
    ]
