"""Turning MQTT messages from devices into rows: validation, dead letters, telemetry.

``parse`` judges one message without the database; ``store_batch`` writes a whole batch
in the caller's transaction (the consumer commits, then acknowledges). Bad input never
raises: it becomes a dead letter with a reason.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from pydantic import ValidationError
from sqlalchemy import func, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from edge_agent.features import FEATURE_SPEC_VERSION, N_FEATURES
from edge_agent.protocol.messages import EventBatch, Telemetry
from edge_agent.protocol.topics import INGESTED, Channel, parse_device_topic
from server.anomalies import service as anomalies_service
from server.anomalies.orm import EventKind
from server.common.pagination import PageParams, paginate
from server.core.db import utcnow
from server.devices import service as devices_service
from server.ingest.exceptions import DeadLetterNotFound
from server.ingest.orm import DeadLetter, TelemetryWindow

logger = logging.getLogger(__name__)

_KINDS = {Channel.ANOMALIES: EventKind.ANOMALY, Channel.SAMPLES: EventKind.SAMPLE}
_DETAIL_LIMIT = 2000


class Reason(StrEnum):
    OVERSIZE = "oversize"
    WRONG_CHANNEL = "wrong_channel"
    BAD_JSON = "bad_json"
    UNKNOWN_SCHEMA_VERSION = "unknown_schema_version"
    INVALID_SCHEMA = "invalid_schema"
    DEVICE_MISMATCH = "device_mismatch"
    UNKNOWN_DEVICE = "unknown_device"
    REVOKED_DEVICE = "revoked_device"
    UNSTORABLE = "unstorable"


@dataclass(frozen=True, slots=True)
class Parsed:
    """A well-formed message from the device its topic names (not yet known to exist)."""

    device_id: uuid.UUID
    channel: Channel
    body: EventBatch | Telemetry

    @property
    def event_ids(self) -> list[uuid.UUID]:
        if isinstance(self.body, Telemetry):
            return [self.body.event_id]
        return [event.event_id for event in self.body.events]


@dataclass(frozen=True, slots=True)
class Rejected:
    reason: Reason
    detail: str
    topic_device_id: str | None = None


def _schema_problem(exc: ValidationError) -> Rejected:
    errors = exc.errors(include_url=False, include_input=False, include_context=False)
    if any(error["type"] == "json_invalid" for error in errors):
        return Rejected(Reason.BAD_JSON, str(errors[0]["msg"])[:_DETAIL_LIMIT])
    if any(error["loc"] == ("schema_version",) for error in errors):
        return Rejected(Reason.UNKNOWN_SCHEMA_VERSION, "schema_version is missing or unsupported")
    described = "; ".join(
        f"{'.'.join(str(p) for p in error['loc']) or '(message)'}: {error['msg']}"
        for error in errors[:5]
    )
    more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
    return Rejected(Reason.INVALID_SCHEMA, (described + more)[:_DETAIL_LIMIT])


def _other_channel(channel: Channel, payload: bytes | bytearray) -> Channel | None:
    """The channel whose schema a payload fits, when it is not the one it came on."""
    model = EventBatch if channel is Channel.TELEMETRY else Telemetry
    try:
        model.model_validate_json(payload)
    except ValidationError:
        return None
    return Channel.ANOMALIES if model is EventBatch else Channel.TELEMETRY


def parse(topic: str, payload: bytes | bytearray, *, max_bytes: int) -> Parsed | Rejected:
    """Judge one message by its topic and bytes alone."""
    where = parse_device_topic(topic)
    topic_device = where[0] if where else None
    if len(payload) > max_bytes:
        return Rejected(
            Reason.OVERSIZE, f"{len(payload)} bytes; the limit is {max_bytes}", topic_device
        )
    if where is None or where[1] not in INGESTED:
        return Rejected(
            Reason.WRONG_CHANNEL, f"ingest does not take messages on {topic[:200]!r}", topic_device
        )
    device, channel = where
    body: EventBatch | Telemetry
    try:
        if channel is Channel.TELEMETRY:
            body = Telemetry.model_validate_json(payload)
        else:
            body = EventBatch.model_validate_json(payload)
    except ValidationError as exc:
        problem = _schema_problem(exc)
        if problem.reason is Reason.INVALID_SCHEMA and (other := _other_channel(channel, payload)):
            return Rejected(
                Reason.WRONG_CHANNEL,
                f"a {other.value} message on the {channel.value} topic",
                topic_device,
            )
        return Rejected(problem.reason, problem.detail, topic_device)
    if body.device_id != device:
        return Rejected(
            Reason.DEVICE_MISMATCH,
            f"payload says device {body.device_id[:64]!r}; the topic says {device!r}",
            topic_device,
        )
    if isinstance(body, EventBatch):
        for index, event in enumerate(body.events):
            if event.feature_spec_version == FEATURE_SPEC_VERSION and (
                len(event.features) != N_FEATURES
            ):
                return Rejected(
                    Reason.INVALID_SCHEMA,
                    f"events.{index}.features: {len(event.features)} values; feature spec "
                    f"v{FEATURE_SPEC_VERSION} has {N_FEATURES}",
                    topic_device,
                )
    try:
        device_id = uuid.UUID(device)
    except ValueError:
        return Rejected(Reason.UNKNOWN_DEVICE, f"{device!r} is not a device id", topic_device)
    return Parsed(device_id, channel, body)


def admit(identity: devices_service.DeviceIdentity | None, device_id: uuid.UUID) -> Rejected | None:
    """Why a well-formed message must still be refused for who sent it, if it must."""
    if identity is None:
        return Rejected(Reason.UNKNOWN_DEVICE, f"no device {device_id}", str(device_id))
    if identity.revoked:
        return Rejected(Reason.REVOKED_DEVICE, f"device {device_id} is revoked", str(device_id))
    return None


@dataclass(frozen=True, slots=True)
class DeadLetterIn:
    topic: str
    payload: bytes | bytearray
    reason: Reason
    detail: str
    topic_device_id: str | None
    received_at: datetime


@dataclass(frozen=True, slots=True)
class Accepted:
    """A parsed message from a known, active device."""

    message: Parsed
    cluster_id: uuid.UUID | None
    received_at: datetime


@dataclass(slots=True)
class ChannelCount:
    events: int = 0
    stored: int = 0

    @property
    def duplicates(self) -> int:
        return self.events - self.stored


@dataclass(slots=True)
class BatchResult:
    counts: dict[Channel, ChannelCount] = field(default_factory=dict)
    dead_letters: int = 0
    # device id -> ids of the events to confirm, duplicates included.
    confirmations: dict[uuid.UUID, list[uuid.UUID]] = field(default_factory=dict)


def store_batch(
    session: Session,
    *,
    accepted: Sequence[Accepted],
    dead_letters: Sequence[DeadLetterIn],
    dead_letter_max_bytes: int,
) -> BatchResult:
    """Store a batch: events once each, telemetry once each, and every dead letter."""
    result = BatchResult()
    rows: dict[Channel, list[anomalies_service.EventRow]] = {}
    telemetry: list[Accepted] = []
    for item in accepted:
        message = item.message
        result.confirmations.setdefault(message.device_id, []).extend(message.event_ids)
        if isinstance(message.body, Telemetry):
            telemetry.append(item)
            continue
        kind = _KINDS[message.channel]
        channel_rows = rows.setdefault(message.channel, [])
        channel_rows.extend(
            anomalies_service.event_rows(
                kind, message.device_id, item.cluster_id, item.received_at, message.body.events
            )
        )
    for channel, channel_rows in rows.items():
        stored = anomalies_service.store_events(session, channel_rows)
        result.counts[channel] = ChannelCount(events=len(channel_rows), stored=stored)
    if telemetry:
        stored = _store_telemetry(session, telemetry)
        result.counts[Channel.TELEMETRY] = ChannelCount(events=len(telemetry), stored=stored)
    if dead_letters:
        _store_dead_letters(session, dead_letters, max_bytes=dead_letter_max_bytes)
        result.dead_letters = len(dead_letters)
    return result


def _telemetry_row(item: Accepted) -> dict[str, Any]:
    body = item.message.body
    assert isinstance(body, Telemetry)
    return {
        "device_id": item.message.device_id,
        "cluster_id": item.cluster_id,
        "event_id": body.event_id,
        "sent_at": body.sent_at,
        "received_at": item.received_at,
        "window_seconds": body.window_seconds,
        "agent_version": body.agent_version[:64],
        "model_version": body.model_version,
        "feature_spec_version": body.feature_spec_version,
        "scored": body.scored,
        "flagged": body.flagged,
        "inference_errors": body.inference_errors,
        "model_load_failures": body.model_load_failures,
        "latency_p50_ms": body.latency.p50_ms,
        "latency_p95_ms": body.latency.p95_ms,
        "latency_p99_ms": body.latency.p99_ms,
        "score_histogram": list(body.score_histogram),
        "outbox": body.outbox.model_dump(),
        "last_update": body.last_update,
    }


def _store_telemetry(session: Session, items: Sequence[Accepted]) -> int:
    """Store new telemetry windows and apply them to the devices' reported state.

    Only windows stored now are applied, so a redelivered old report cannot roll a
    device's state back.
    """
    dialect = postgresql if session.connection().dialect.name == "postgresql" else sqlite
    statement = (
        dialect.insert(TelemetryWindow)
        .on_conflict_do_nothing(index_elements=["device_id", "event_id"])
        .returning(TelemetryWindow.device_id, TelemetryWindow.event_id)
    )
    inserted = {
        (device_id, event_id)
        for device_id, event_id in session.execute(
            statement, [_telemetry_row(item) for item in items]
        )
    }
    reports = []
    for item in items:
        body = item.message.body
        assert isinstance(body, Telemetry)
        if (item.message.device_id, body.event_id) not in inserted:
            continue
        reports.append(
            devices_service.ReportedState(
                device_id=item.message.device_id,
                sent_at=body.sent_at,
                agent_version=body.agent_version[:64],
                model_version=body.model_version,
                health={
                    "reported_at": body.sent_at.isoformat(),
                    "window_seconds": body.window_seconds,
                    "scored": body.scored,
                    "flagged": body.flagged,
                    "inference_errors": body.inference_errors,
                    "model_load_failures": body.model_load_failures,
                    "latency_ms": body.latency.model_dump(),
                    "outbox": body.outbox.model_dump(),
                    "last_update": body.last_update,
                    "feature_spec_version": body.feature_spec_version,
                },
            )
        )
    if reports:
        devices_service.record_reported_state(session, reports=reports)
    return len(inserted)


def _store_dead_letters(session: Session, items: Sequence[DeadLetterIn], *, max_bytes: int) -> None:
    session.execute(
        insert(DeadLetter),
        [
            {
                "received_at": item.received_at,
                "topic": item.topic[:512],
                "topic_device_id": item.topic_device_id[:128] if item.topic_device_id else None,
                "reason": item.reason.value,
                "detail": item.detail[:_DETAIL_LIMIT],
                "payload": item.payload[:max_bytes],
                "payload_size": len(item.payload),
                "truncated": len(item.payload) > max_bytes,
            }
            for item in items
        ],
    )


@dataclass(frozen=True, slots=True)
class DeadLetterFilters:
    reason: Reason | None = None
    topic_device_id: str | None = None
    since: datetime | None = None


def list_dead_letters(
    session: Session, *, filters: DeadLetterFilters, params: PageParams
) -> tuple[list[DeadLetter], str | None]:
    statement = select(DeadLetter)
    if filters.reason is not None:
        statement = statement.where(DeadLetter.reason == filters.reason.value)
    if filters.topic_device_id is not None:
        statement = statement.where(DeadLetter.topic_device_id == filters.topic_device_id)
    if filters.since is not None:
        statement = statement.where(DeadLetter.received_at >= filters.since)
    return paginate(session, statement, order_by=[DeadLetter.id], params=params, descending=True)


def get_dead_letter(session: Session, dead_letter_id: int) -> DeadLetter:
    record = session.get(DeadLetter, dead_letter_id)
    if record is None:
        raise DeadLetterNotFound(f"dead letter {dead_letter_id} does not exist")
    return record


def count_dead_letters_by_reason(session: Session) -> dict[str, int]:
    rows = session.execute(select(DeadLetter.reason, func.count()).group_by(DeadLetter.reason))
    return {reason: int(count) for reason, count in rows}


@dataclass(frozen=True, slots=True)
class ModelTotals:
    """A model's telemetry summed over a period: what rollout analysis compares."""

    model_version: str | None
    devices: int
    windows: int
    scored: int
    flagged: int
    inference_errors: int
    model_load_failures: int
    mean_latency_p95_ms: float

    @property
    def flag_rate(self) -> float:
        return self.flagged / self.scored if self.scored else 0.0


def model_totals(
    session: Session,
    *,
    since: datetime,
    until: datetime | None = None,
    device_ids: Sequence[uuid.UUID] | None = None,
) -> list[ModelTotals]:
    """Telemetry windows sent in [since, until), per model version (optionally of some
    devices only, such as a rollout's canary cohort)."""
    statement = select(
        TelemetryWindow.model_version,
        func.count(func.distinct(TelemetryWindow.device_id)),
        func.count(),
        func.sum(TelemetryWindow.scored),
        func.sum(TelemetryWindow.flagged),
        func.sum(TelemetryWindow.inference_errors),
        func.sum(TelemetryWindow.model_load_failures),
        func.avg(TelemetryWindow.latency_p95_ms),
    ).where(TelemetryWindow.sent_at >= since)
    if until is not None:
        statement = statement.where(TelemetryWindow.sent_at < until)
    if device_ids is not None:
        statement = statement.where(TelemetryWindow.device_id.in_(device_ids))
    rows = session.execute(
        statement.group_by(TelemetryWindow.model_version).order_by(TelemetryWindow.model_version)
    )
    return [
        ModelTotals(
            model_version=version,
            devices=int(devices),
            windows=int(windows),
            scored=int(scored or 0),
            flagged=int(flagged or 0),
            inference_errors=int(errors or 0),
            model_load_failures=int(failures or 0),
            mean_latency_p95_ms=float(latency or 0.0),
        )
        for version, devices, windows, scored, flagged, errors, failures, latency in rows
    ]


DEVICE_TELEMETRY_LIMIT = 500


def device_telemetry(
    session: Session, device_id: uuid.UUID, *, minutes: int, now: datetime | None = None
) -> list[TelemetryWindow]:
    """A device's telemetry windows sent in the last ``minutes``, oldest first (at most
    the newest :data:`DEVICE_TELEMETRY_LIMIT`)."""
    since = (now or utcnow()) - timedelta(minutes=minutes)
    newest = session.scalars(
        select(TelemetryWindow)
        .where(TelemetryWindow.device_id == device_id, TelemetryWindow.sent_at >= since)
        .order_by(TelemetryWindow.sent_at.desc(), TelemetryWindow.id.desc())
        .limit(DEVICE_TELEMETRY_LIMIT)
    )
    return list(reversed(list(newest)))
