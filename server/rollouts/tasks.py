"""Rollout work run by the worker: publishing desired states, and moving rollouts on."""

from __future__ import annotations

import logging
import uuid

from server.core.config import get_settings
from server.core.db import session_scope
from server.core.mqtt import PublishError, publish_retained
from server.rollouts import service as rollouts_service
from server.worker import celery_app, idempotent_task

logger = logging.getLogger(__name__)


@celery_app.task(
    name=rollouts_service.PUBLISH_TASK,
    **{**idempotent_task, "autoretry_for": (*idempotent_task["autoretry_for"], PublishError)},
)
def publish_desired(device_ids: list[str]) -> int:
    """Publish the current desired state of these devices, retained. Safe to repeat: it
    reads the state at run time, and devices ignore generations they have seen."""
    with session_scope() as session:
        messages = rollouts_service.desired_messages(
            session, [uuid.UUID(device_id) for device_id in device_ids]
        )
    published = publish_retained(get_settings(), rollouts_service.retained_payloads(messages))
    logger.info("published the desired state of %d devices", published)
    return published


@celery_app.task(name="rollouts.tick", **idempotent_task)
def tick() -> dict[str, str]:
    """Analyse every running rollout once and act on each verdict, each in its own
    transaction, so one rollout's trouble never holds up another."""
    with session_scope() as session:
        rollout_ids = rollouts_service.running_rollout_ids(session)
    verdicts: dict[str, str] = {}
    for rollout_id in rollout_ids:
        try:
            with session_scope() as session:
                analysis = rollouts_service.advance_by_id(session, rollout_id)
        except Exception:
            logger.exception("rollout %s could not be advanced", rollout_id)
            verdicts[str(rollout_id)] = "error"
            continue
        if analysis is not None:
            verdicts[str(rollout_id)] = analysis.verdict
    return verdicts
