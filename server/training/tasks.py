"""Retraining, run by the worker: runs, the schedule and the drift check."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime

from sqlalchemy.exc import OperationalError

from server.common.actor import Actor
from server.core.db import session_scope
from server.core.errors import DomainError
from server.training import runs as runs_service
from server.training import service as training_service
from server.training.exceptions import TrainingError
from server.training.orm import RunState
from server.worker import celery_app, idempotent_task

logger = logging.getLogger(__name__)


def _utc(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise TrainingError(f"{value!r} has no time zone; give UTC times")
    return parsed


@celery_app.task(name="training.retrain", **idempotent_task)
def retrain(start: str, end: str, model_name: str = "fraud") -> dict[str, str | bool | None]:
    """Snapshot ``[start, end)`` (ISO 8601 times) of fleet data, train, and register a
    candidate if it passes the gate. No run record and no lock: ``training.run`` has them.

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
        "model_id": str(result.model_id) if result.model_id else None,
        "created": result.created,
        "gate": result.gate.reason if result.gate else None,
    }


def execute_run(
    run_id: uuid.UUID, *, options: training_service.RetrainOptions | None = None
) -> RunState:
    """Claim the run, snapshot, train, gate and record: claim, snapshot and registration
    each in a transaction of their own, training in none, so that the lock is visible to
    other workers while training runs and no database lock is held meanwhile."""
    with session_scope() as session:
        state = runs_service.claim_run(session, run_id).state
    if state is not RunState.RUNNING:
        return state
    try:
        with session_scope() as session:
            retrain_options, prepared = runs_service.snapshot_run(session, run_id, options=options)
        if isinstance(prepared, training_service.RetrainResult):
            with session_scope() as session:
                return runs_service.record_result(session, run_id, prepared).state
        trained = training_service.train_on_snapshot(prepared, retrain_options)
        with session_scope() as session:
            return runs_service.register_run(
                session, run_id, trained=trained, options=retrain_options
            ).state
    except (OperationalError, ConnectionError):
        with session_scope() as session:
            runs_service.release_run(session, run_id)
        raise
    except (TrainingError, DomainError) as exc:
        logger.warning("training run %s failed: %s", run_id, exc)
        with session_scope() as session:
            return runs_service.fail_run(session, run_id, error=str(exc)).state
    except Exception as exc:
        with session_scope() as session:
            runs_service.fail_run(session, run_id, error=f"{type(exc).__name__}: {exc}")
        raise


@celery_app.task(name="training.run", **idempotent_task)
def run(run_id: str) -> str:
    """Carry out a recorded run; its final state. Run again, a finished run stays as it is."""
    return execute_run(uuid.UUID(run_id)).value


@celery_app.task(name="training.scheduled_retrain", **idempotent_task)
def scheduled_retrain() -> str | None:
    """Ask for the schedule's run; the id of the run, or None if this period has one."""
    with session_scope() as session:
        requested = runs_service.request_scheduled(session)
        return str(requested.id) if requested else None


@celery_app.task(name="training.check_drift", **idempotent_task)
def check_drift() -> dict[str, object]:
    """Check the stable model for drift and ask for a run when a check fires."""
    with session_scope() as session:
        check, requested = runs_service.check_drift_and_retrain(session)
        return {
            "model": check.model_label if check else None,
            "fired": [result.check for result in check.fired] if check else [],
            "run_id": str(requested.id) if requested else None,
        }
