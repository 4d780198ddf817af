"""Desired state: which model each device should run, served over REST and as a retained
MQTT message per device. Rollouts decide it; devices follow it."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from edge_agent.protocol.artifact import MANIFEST_FILE, MODEL_FILE
from edge_agent.protocol.messages import DesiredModel
from edge_agent.protocol.messages import DesiredState as DesiredStateMessage
from edge_agent.protocol.topics import Channel, device_topic
from server.audit import service as audit_service
from server.common.actor import Actor
from server.core.config import get_settings
from server.core.db import after_commit, utcnow
from server.devices import service as devices_service
from server.registry import service as registry_service
from server.rollouts.orm import DesiredState

if TYPE_CHECKING:
    from server.registry.orm import ModelVersion

PUBLISH_TASK = "rollouts.publish_desired"
_PENDING = "edgeplane.rollouts.pending_publish"


def assign_model(
    session: Session,
    *,
    actor: Actor,
    device_ids: Sequence[uuid.UUID],
    model_id: uuid.UUID | None,
    rollout_id: uuid.UUID | None = None,
) -> int:
    """Set the desired model of devices (None: run no model). Published after the commit."""
    if model_id is not None:
        registry_service.get_model(session, model_id)
    existing = {
        state.device_id: state
        for state in session.scalars(
            select(DesiredState).where(DesiredState.device_id.in_(device_ids))
        )
    }
    changed: list[uuid.UUID] = []
    for device_id in device_ids:
        state = existing.get(device_id)
        if state is None:
            state = DesiredState(device_id=device_id, generation=0)
            session.add(state)
        elif state.model_id == model_id and state.rollout_id == rollout_id:
            continue
        state.model_id = model_id
        state.rollout_id = rollout_id
        state.generation += 1
        state.updated_at = utcnow()
        changed.append(device_id)
    session.flush()
    if changed:
        audit_service.record(
            session,
            actor=actor,
            action="desired_state.assign",
            target_type="model",
            target_id=model_id,
            details={
                "devices": len(changed),
                "rollout_id": str(rollout_id) if rollout_id else None,
            },
        )
        _publish_after_commit(session, changed)
    return len(changed)


def _publish_after_commit(session: Session, device_ids: list[uuid.UUID]) -> None:
    pending: set[uuid.UUID] = session.info.setdefault(_PENDING, set())
    pending.update(device_ids)

    def enqueue() -> None:
        from server.worker import celery_app

        ids = sorted(str(device_id) for device_id in session.info.pop(_PENDING, pending))
        celery_app.send_task(PUBLISH_TASK, args=[ids])

    after_commit(session, PUBLISH_TASK, enqueue)


def desired_messages(
    session: Session, device_ids: Sequence[uuid.UUID]
) -> list[DesiredStateMessage]:
    """The desired state of each device, as the wire message (generation 0: never assigned)."""
    states = {
        state.device_id: state
        for state in session.scalars(
            select(DesiredState).where(DesiredState.device_id.in_(device_ids))
        )
    }
    base = get_settings().public_url.rstrip("/")
    models: dict[uuid.UUID, ModelVersion] = {}
    now = utcnow()
    messages = []
    for device_id in device_ids:
        state = states.get(device_id)
        desired_model = None
        if state is not None and state.model_id is not None:
            model = models.get(state.model_id)
            if model is None:
                model = models[state.model_id] = registry_service.get_model(session, state.model_id)
            files = f"{base}/api/v1/agent/models/{model.id}/files"
            desired_model = DesiredModel(
                name=model.name,
                version=model.label,
                url=f"{files}/{MODEL_FILE}",
                manifest_url=f"{files}/{MANIFEST_FILE}",
                sha256=model.sha256,
                signature=model.signature,
                feature_spec_version=model.feature_spec_version,
            )
        messages.append(
            DesiredStateMessage(
                device_id=str(device_id),
                generation=state.generation if state else 0,
                model=desired_model,
                rollout_id=str(state.rollout_id) if state and state.rollout_id else None,
                issued_at=now,
            )
        )
    return messages


def desired_for_device(session: Session, device_id: uuid.UUID) -> DesiredStateMessage:
    devices_service.get_device(session, device_id)
    return desired_messages(session, [device_id])[0]


def retained_payloads(messages: Sequence[DesiredStateMessage]) -> list[tuple[str, bytes]]:
    return [
        (device_topic(message.device_id, Channel.DESIRED), message.model_dump_json().encode())
        for message in messages
    ]
