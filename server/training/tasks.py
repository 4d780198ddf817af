"""Retraining, run by the worker."""

from __future__ import annotations

import logging
from datetime import datetime

from server.common.actor import Actor
from server.core.db import session_scope
from server.training import service as training_service
from server.training.exceptions import TrainingError
from server.worker import celery_app, idempotent_task

logger = logging.getLogger(__name__)


def _utc(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise TrainingError(f"{value!r} has no time zone; give UTC times")
    return parsed


@celery_app.task(name="training.retrain", **idempotent_task)
def retrain(start: str, end: str, model_name: str = "fraud") -> dict[str, str | bool]:
    """Snapshot ``[start, end)`` (ISO 8601 times) of fleet data, train, register a candidate.

    The range and its content are the dedupe key: run again on unchanged data, it
    returns the model already registered for that snapshot.
    """
    with session_scope() as session:
        result = training_service.retrain(
            session,
            actor=Actor.system("retraining"),
            start=_utc(start),
            end=_utc(end),
            options=training_service.RetrainOptions(model_name=model_name),
        )
    return {
        "snapshot": result.snapshot.key,
        "model_id": str(result.model_id),
        "created": result.created,
    }
