"""Devices: enrollment, inventory, heartbeats and liveness."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from server.audit import service as audit_service
from server.auth import service as auth_service
from server.broker import service as broker_service
from server.clusters import service as clusters_service
from server.common.actor import Actor, ActorKind
from server.common.pagination import PageParams, paginate
from server.core.config import get_settings
from server.core.db import utcnow
from server.core.security import ENROLLMENT_TOKEN_PREFIX, hash_token, new_token
from server.devices.exceptions import (
    DeviceNotFound,
    DeviceRevoked,
    EnrollmentRefused,
    EnrollmentTokenNotFound,
)
from server.devices.orm import Device, DeviceStatus, EnrollmentToken
from server.devices.schemas import (
    DeviceUpdate,
    EnrollmentTokenCreate,
    EnrollRequest,
    HeartbeatRequest,
)


@dataclass(frozen=True, slots=True)
class IssuedEnrollmentToken:
    token: str
    record: EnrollmentToken


@dataclass(frozen=True, slots=True)
class Enrollment:
    device: Device
    credential: str


@dataclass(frozen=True, slots=True)
class DeviceFilters:
    cluster_id: uuid.UUID | None = None
    status: DeviceStatus | None = None
    model_version: str | None = None
    label: tuple[str, str] | None = None
    name_prefix: str | None = None


def create_enrollment_token(
    session: Session, *, actor: Actor, data: EnrollmentTokenCreate
) -> IssuedEnrollmentToken:
    if data.cluster_id is not None:
        clusters_service.get_cluster(session, data.cluster_id)
    hours = data.expires_in_hours or get_settings().security.enrollment_token_ttl_hours
    token = new_token(ENROLLMENT_TOKEN_PREFIX)
    record = EnrollmentToken(
        token_hash=hash_token(token),
        display_prefix=token[:10],
        description=data.description,
        cluster_id=data.cluster_id,
        labels=data.labels,
        created_by=actor.name,
        expires_at=utcnow() + timedelta(hours=hours),
    )
    session.add(record)
    session.flush()
    audit_service.record(
        session,
        actor=actor,
        action="enrollment_token.create",
        target_type="enrollment_token",
        target_id=record.id,
        details={"cluster_id": str(data.cluster_id) if data.cluster_id else None, "hours": hours},
    )
    return IssuedEnrollmentToken(token=token, record=record)


def list_enrollment_tokens(
    session: Session, *, include_used: bool = False
) -> list[EnrollmentToken]:
    statement = select(EnrollmentToken).order_by(EnrollmentToken.created_at.desc())
    if not include_used:
        statement = statement.where(
            EnrollmentToken.used_at.is_(None), EnrollmentToken.revoked_at.is_(None)
        )
    return list(session.scalars(statement))


def revoke_enrollment_token(
    session: Session, *, actor: Actor, token_id: uuid.UUID
) -> EnrollmentToken:
    record = session.get(EnrollmentToken, token_id)
    if record is None:
        raise EnrollmentTokenNotFound(f"enrollment token {token_id} does not exist")
    if record.revoked_at is None and record.used_at is None:
        record.revoked_at = utcnow()
        audit_service.record(
            session,
            actor=actor,
            action="enrollment_token.revoke",
            target_type="enrollment_token",
            target_id=record.id,
        )
    return record


def enroll(
    session: Session, *, token: str, data: EnrollRequest, ip: str | None, request_id: str | None
) -> Enrollment:
    """Spend a one-time enrollment token on a new device and issue its own credential.

    The token is claimed by a conditional UPDATE, so two devices racing with the
    same token cannot both win.
    """
    now = utcnow()
    claimed = session.execute(
        update(EnrollmentToken)
        .where(
            EnrollmentToken.token_hash == hash_token(token),
            EnrollmentToken.used_at.is_(None),
            EnrollmentToken.revoked_at.is_(None),
            EnrollmentToken.expires_at > now,
        )
        .values(used_at=now)
        .returning(EnrollmentToken.id)
    ).scalar_one_or_none()
    if claimed is None:
        raise EnrollmentRefused(
            "the enrollment token is not valid: unknown, already used, revoked or expired"
        )
    record = session.get_one(EnrollmentToken, claimed)
    device = Device(
        name=data.name,
        cluster_id=record.cluster_id,
        labels=dict(record.labels),
        agent_version=data.agent_version,
        status=DeviceStatus.OFFLINE,
    )
    session.add(device)
    session.flush()
    record.device_id = device.id
    credential = auth_service.issue_device_credential(session, device_id=device.id)
    device.mqtt_password_hash = broker_service.hash_password(credential)
    broker_service.request_sync(session)
    actor = Actor(
        kind=ActorKind.DEVICE,
        id=device.id,
        name=f"device:{device.id}",
        ip=ip,
        request_id=request_id,
    )
    audit_service.record(
        session,
        actor=actor,
        action="device.enroll",
        target_type="device",
        target_id=device.id,
        details={"name": data.name, "enrollment_token_id": str(record.id)},
    )
    return Enrollment(device=device, credential=credential)


def get_device(session: Session, device_id: uuid.UUID) -> Device:
    device = session.get(Device, device_id)
    if device is None:
        raise DeviceNotFound(f"device {device_id} does not exist")
    return device


def list_devices(
    session: Session, *, filters: DeviceFilters, params: PageParams
) -> tuple[list[Device], str | None]:
    statement = select(Device)
    if filters.cluster_id is not None:
        statement = statement.where(Device.cluster_id == filters.cluster_id)
    if filters.status is not None:
        statement = statement.where(Device.status == filters.status)
    if filters.model_version is not None:
        statement = statement.where(Device.model_version == filters.model_version)
    if filters.name_prefix:
        statement = statement.where(Device.name.startswith(filters.name_prefix, autoescape=True))
    if filters.label is not None:
        key, value = filters.label
        statement = statement.where(Device.labels[key].as_string() == value)
    return paginate(session, statement, order_by=[Device.name, Device.id], params=params)


@dataclass(frozen=True, slots=True)
class ModelVersionUsage:
    model_version: str | None
    devices: int
    online: int


@dataclass(frozen=True, slots=True)
class FleetSummary:
    by_status: dict[DeviceStatus, int]
    by_model_version: list[ModelVersionUsage]

    @property
    def total(self) -> int:
        return sum(self.by_status.values())


def summarize(session: Session) -> FleetSummary:
    """Device counts by status and by model version, from one GROUP BY (no rows loaded)."""
    rows = session.execute(
        select(Device.model_version, Device.status, func.count()).group_by(
            Device.model_version, Device.status
        )
    ).all()
    by_status = dict.fromkeys(DeviceStatus, 0)
    devices: dict[str | None, int] = {}
    online: dict[str | None, int] = {}
    for model_version, status, count in rows:
        by_status[status] += count
        if status is DeviceStatus.REVOKED:
            continue
        devices[model_version] = devices.get(model_version, 0) + count
        if status is DeviceStatus.ONLINE:
            online[model_version] = online.get(model_version, 0) + count
    usage = [
        ModelVersionUsage(model_version=version, devices=count, online=online.get(version, 0))
        for version, count in devices.items()
    ]
    usage.sort(key=lambda u: (-u.devices, u.model_version is None, u.model_version or ""))
    return FleetSummary(by_status=by_status, by_model_version=usage)


def update_device(
    session: Session, *, actor: Actor, device_id: uuid.UUID, data: DeviceUpdate
) -> Device:
    device = get_device(session, device_id)
    changes = data.model_dump(exclude_unset=True, mode="json")
    if data.cluster_id is not None:
        clusters_service.get_cluster(session, data.cluster_id)
    for field, value in data.model_dump(exclude_unset=True).items():
        setattr(device, field, value)
    session.flush()
    audit_service.record(
        session,
        actor=actor,
        action="device.update",
        target_type="device",
        target_id=device.id,
        details=changes,
    )
    return device


def revoke_device(session: Session, *, actor: Actor, device_id: uuid.UUID) -> Device:
    """Revoke a device: its credentials stop working at once; it must enroll again."""
    device = get_device(session, device_id)
    if device.status is not DeviceStatus.REVOKED:
        device.status = DeviceStatus.REVOKED
        device.revoked_at = utcnow()
        auth_service.revoke_device_credentials(session, device_id=device.id)
        device.mqtt_password_hash = None
        broker_service.request_sync(session)
        audit_service.record(
            session, actor=actor, action="device.revoke", target_type="device", target_id=device.id
        )
    return device


def record_heartbeat(session: Session, *, device_id: uuid.UUID, data: HeartbeatRequest) -> Device:
    device = get_device(session, device_id)
    if device.status is DeviceStatus.REVOKED:
        raise DeviceRevoked("this device has been revoked")
    device.last_seen_at = utcnow()
    device.status = DeviceStatus.ONLINE
    if data.agent_version is not None:
        device.agent_version = data.agent_version
    if data.model_version is not None:
        device.model_version = data.model_version
    if data.health:
        device.health = data.health
    return device


def mark_offline(session: Session, *, now: datetime | None = None) -> list[uuid.UUID]:
    """Mark online devices that missed their heartbeat window as offline. Idempotent."""
    cutoff = (now or utcnow()) - timedelta(seconds=get_settings().device_offline_after_seconds)
    stale = list(
        session.scalars(
            select(Device.id).where(
                Device.status == DeviceStatus.ONLINE,
                (Device.last_seen_at < cutoff) | Device.last_seen_at.is_(None),
            )
        )
    )
    if stale:
        session.execute(
            update(Device)
            .where(Device.id.in_(stale), Device.status == DeviceStatus.ONLINE)
            .values(status=DeviceStatus.OFFLINE)
        )
        audit_service.record(
            session,
            actor=Actor.system("liveness-monitor"),
            action="device.mark_offline",
            target_type="device",
            details={"count": len(stale), "cutoff": cutoff.isoformat()},
        )
    return stale


def mqtt_accounts(session: Session) -> list[broker_service.Account]:
    """The broker accounts of every device that may connect (enrolled, not revoked)."""
    rows = session.execute(
        select(Device.id, Device.mqtt_password_hash)
        .where(Device.status != DeviceStatus.REVOKED, Device.mqtt_password_hash.is_not(None))
        .order_by(Device.enrolled_at, Device.id)
    )
    return [
        broker_service.Account(str(device_id), str(password_hash))
        for device_id, password_hash in rows
    ]


@dataclass(frozen=True, slots=True)
class DeviceIdentity:
    """What ingest needs to know about the sender of a message."""

    id: uuid.UUID
    cluster_id: uuid.UUID | None
    revoked: bool


def identify(
    session: Session, device_ids: Collection[uuid.UUID]
) -> dict[uuid.UUID, DeviceIdentity]:
    """The devices among ``device_ids`` that exist, in one query."""
    if not device_ids:
        return {}
    rows = session.execute(
        select(Device.id, Device.cluster_id, Device.status).where(Device.id.in_(device_ids))
    )
    return {
        device_id: DeviceIdentity(device_id, cluster_id, status is DeviceStatus.REVOKED)
        for device_id, cluster_id, status in rows
    }


@dataclass(frozen=True, slots=True)
class ReportedState:
    """A device's own account of itself, from its telemetry."""

    device_id: uuid.UUID
    sent_at: datetime
    agent_version: str
    model_version: str | None
    health: dict[str, object]


def record_reported_state(session: Session, *, reports: Sequence[ReportedState]) -> int:
    """Apply the newest report of each device: model, agent, health, seen now, online.

    Revoked devices are left alone. Returns how many devices changed.
    """
    newest: dict[uuid.UUID, ReportedState] = {}
    for report in reports:
        current = newest.get(report.device_id)
        if current is None or report.sent_at >= current.sent_at:
            newest[report.device_id] = report
    now = utcnow()
    changed = 0
    for report in newest.values():
        result = session.execute(
            update(Device)
            .where(Device.id == report.device_id, Device.status != DeviceStatus.REVOKED)
            .values(
                last_seen_at=now,
                status=DeviceStatus.ONLINE,
                agent_version=report.agent_version,
                model_version=report.model_version,
                health=report.health,
            )
            .execution_options(synchronize_session=False)
        )
        changed += result.rowcount  # type: ignore[attr-defined]
    return changed
