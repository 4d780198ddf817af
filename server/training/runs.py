"""Training runs: every retrain that was asked for, why, and how it ended; and the lock.

A run is asked for on demand (API, dashboard), by the schedule or by drift, and is
recorded at once with its trigger and evidence. The worker claims it, trains, and
records the outcome: registered (passed the gate), rejected (failed it), failed or
skipped.

The lock: at most one run is ``running``. A run is claimed with a conditional UPDATE
(queued, and no other run running), and the claim also sets ``running_lock``, whose
unique constraint stops two workers that race past the condition together. A request
while a run is running is recorded as ``skipped``, with the run that held the lock:
the data it asked for is being trained on already. A run still running after
``training.stale_run_hours`` is presumed dead (its worker vanished) and may be taken
over: it is marked failed and the lock is free again.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from server.audit import service as audit_service
from server.common.actor import Actor
from server.common.pagination import PageParams, paginate
from server.core.config import get_settings
from server.core.db import after_commit, utcnow
from server.registry import service as registry_service
from server.training.drift import DriftCheck, check_drift
from server.training.exceptions import InvalidTrainingWindow, RunTakenOver, TrainingRunNotFound
from server.training.orm import RunState, RunTrigger, TrainingRun
from server.training.schemas import TrainingRunRead

if TYPE_CHECKING:
    from server.training.service import RetrainOptions, RetrainResult, TrainedCandidate
    from server.training.snapshot import SnapshotManifest

logger = logging.getLogger(__name__)

RUN_TASK: Final = "training.run"
SYSTEM_ACTOR: Final = "retraining"


def _stale_before(now: datetime) -> datetime:
    return now - timedelta(hours=get_settings().training.stale_run_hours)


def running_run(session: Session, *, now: datetime | None = None) -> TrainingRun | None:
    """The run holding the lock, unless it is presumed dead."""
    return session.scalar(
        select(TrainingRun)
        .where(
            TrainingRun.state == RunState.RUNNING,
            TrainingRun.started_at >= _stale_before(now or utcnow()),
        )
        .limit(1)
    )


def _busy_reason(holder: TrainingRun) -> str:
    started = holder.started_at.isoformat() if holder.started_at else "an unknown time"
    return f"run {holder.id} ({holder.trigger.value}) has been running since {started}"


def _enqueue_after_commit(session: Session, run_id: uuid.UUID) -> None:
    def enqueue() -> None:
        from server.worker import celery_app

        celery_app.send_task(RUN_TASK, args=[str(run_id)])

    after_commit(session, f"{RUN_TASK}:{run_id}", enqueue)


def request_run(
    session: Session,
    *,
    actor: Actor,
    trigger: RunTrigger,
    evidence: dict[str, Any] | None = None,
    window_start: datetime | None = None,
    window_end: datetime | None = None,
    note: str | None = None,
) -> TrainingRun:
    """Record a retrain request and, once committed, hand it to the worker.

    The window defaults to the last ``training.window_days`` days up to now. While
    another run is running the request is recorded as skipped and not enqueued. An
    on-demand request without evidence records who asked and the request id.
    """
    settings = get_settings().training
    now = utcnow()
    end = window_end or now
    start = window_start or end - timedelta(days=settings.window_days)
    if start >= end:
        raise InvalidTrainingWindow(
            f"window_start ({start.isoformat()}) must be before window_end ({end.isoformat()})"
        )
    if evidence is None and trigger is RunTrigger.ON_DEMAND:
        evidence = {"actor_kind": actor.kind.value, "request_id": actor.request_id}
    run = TrainingRun(
        trigger=trigger,
        evidence=evidence or {},
        requested_by=actor.name,
        note=note,
        state=RunState.QUEUED,
        model_name=settings.model_name,
        window_start=start,
        window_end=end,
        created_at=now,
    )
    holder = running_run(session, now=now)
    if holder is not None:
        run.state = RunState.SKIPPED
        run.reason = _busy_reason(holder)
        run.finished_at = now
    session.add(run)
    session.flush()
    audit_service.record(
        session,
        actor=actor,
        action="training_run.request",
        target_type="training_run",
        target_id=run.id,
        details={"trigger": trigger.value, "state": run.state.value},
    )
    if run.state is RunState.QUEUED:
        _enqueue_after_commit(session, run.id)
    logger.info("training run %s (%s): %s", run.id, trigger.value, run.state.value)
    return run


def get_run(session: Session, run_id: uuid.UUID) -> TrainingRun:
    run = session.get(TrainingRun, run_id)
    if run is None:
        raise TrainingRunNotFound(f"training run {run_id} does not exist")
    return run


def list_runs(
    session: Session,
    *,
    params: PageParams,
    trigger: RunTrigger | None = None,
    state: RunState | None = None,
) -> tuple[list[TrainingRun], str | None]:
    statement = select(TrainingRun)
    if trigger:
        statement = statement.where(TrainingRun.trigger == trigger)
    if state:
        statement = statement.where(TrainingRun.state == state)
    return paginate(
        session,
        statement,
        order_by=[TrainingRun.created_at, TrainingRun.id],
        params=params,
        descending=True,
    )


def to_read(session: Session, runs: Sequence[TrainingRun]) -> list[TrainingRunRead]:
    """Runs as the API shows them, with the label of each registered model."""
    labels = registry_service.labels(session, (run.model_id for run in runs))
    return [
        TrainingRunRead.model_validate(run).model_copy(
            update={"model_label": labels.get(run.model_id) if run.model_id else None}
        )
        for run in runs
    ]


def _take_over_stale(session: Session, *, run_id: uuid.UUID, now: datetime) -> None:
    """Free the lock of runs presumed dead. This very run (a redelivered task) is queued
    again rather than failed, so it can be claimed at once."""
    stale = _stale_before(now)
    hours = get_settings().training.stale_run_hours
    session.execute(
        update(TrainingRun)
        .where(
            TrainingRun.state == RunState.RUNNING,
            TrainingRun.started_at < stale,
            TrainingRun.id == run_id,
        )
        .values(state=RunState.QUEUED, running_lock=None, started_at=None)
        .execution_options(synchronize_session=False)
    )
    taken = session.execute(
        update(TrainingRun)
        .where(
            TrainingRun.state == RunState.RUNNING,
            TrainingRun.started_at < stale,
            TrainingRun.id != run_id,
        )
        .values(
            state=RunState.FAILED,
            running_lock=None,
            finished_at=now,
            error=f"presumed dead after running for more than {hours:g} h; "
            f"taken over by run {run_id}",
        )
        .returning(TrainingRun.id)
        .execution_options(synchronize_session=False)
    ).scalars()
    for taken_id in taken:
        logger.warning("training run %s presumed dead; run %s takes over", taken_id, run_id)


def claim_run(session: Session, run_id: uuid.UUID) -> TrainingRun:
    """Take the lock for a queued run. The run comes back ``running`` if this call
    claimed it; a queued run that could not be claimed comes back ``skipped``, with the
    run holding the lock as the reason; any other run comes back as it was."""
    get_run(session, run_id)
    now = utcnow()
    _take_over_stale(session, run_id=run_id, now=now)
    other = aliased(TrainingRun)
    claimed: uuid.UUID | None
    try:
        with session.begin_nested():
            claimed = session.execute(
                update(TrainingRun)
                .where(
                    TrainingRun.id == run_id,
                    TrainingRun.state == RunState.QUEUED,
                    ~select(other.id).where(other.state == RunState.RUNNING).exists(),
                )
                .values(state=RunState.RUNNING, running_lock=True, started_at=now)
                .returning(TrainingRun.id)
                .execution_options(synchronize_session=False)
            ).scalar_one_or_none()
    except IntegrityError:
        # Another worker claimed a run between our condition and our write.
        claimed = None
    run = get_run(session, run_id)
    session.refresh(run)
    if claimed is None and run.state is RunState.QUEUED:
        holder = session.scalar(
            select(TrainingRun).where(TrainingRun.state == RunState.RUNNING).limit(1)
        )
        run.state = RunState.SKIPPED
        run.reason = _busy_reason(holder) if holder else "another run held the lock"
        run.finished_at = now
        session.flush()
        logger.info("training run %s skipped: %s", run.id, run.reason)
    return run


def _finish(session: Session, run_id: uuid.UUID, **values: Any) -> None:
    """Leave ``running`` for a final state, unless the run was taken over meanwhile."""
    finished = session.execute(
        update(TrainingRun)
        .where(TrainingRun.id == run_id, TrainingRun.state == RunState.RUNNING)
        .values(running_lock=None, finished_at=utcnow(), **values)
        .returning(TrainingRun.id)
        .execution_options(synchronize_session=False)
    ).scalar_one_or_none()
    if finished is None:
        raise RunTakenOver(f"training run {run_id} is no longer running; its result is dropped")
    session.refresh(get_run(session, run_id))


def _retrain_options(run: TrainingRun, options: RetrainOptions | None) -> RetrainOptions:
    """The run's model name, whatever ``options`` say."""
    from server.training import service as training_service

    base = options or training_service.RetrainOptions()
    return training_service.RetrainOptions(
        model_name=run.model_name,
        quantization=base.quantization,
        validation_fraction=base.validation_fraction,
        test_fraction=base.test_fraction,
        mlp=base.mlp,
        gate=base.gate,
    )


def _running(session: Session, run_id: uuid.UUID) -> TrainingRun:
    run = get_run(session, run_id)
    if run.state is not RunState.RUNNING:
        raise RunTakenOver(f"training run {run_id} is {run.state.value}, not running")
    return run


def snapshot_run(
    session: Session, run_id: uuid.UUID, *, options: RetrainOptions | None = None
) -> tuple[RetrainOptions, SnapshotManifest | RetrainResult]:
    """A claimed run's first step: its options and its stored snapshot, or the result
    naming the model already trained on that very snapshot."""
    # Imported here: it loads the ML stack, which the API does not need.
    from server.training import service as training_service

    run = _running(session, run_id)
    retrain_options = _retrain_options(run, options)
    prepared = training_service.snapshot_for_retraining(
        session, start=run.window_start, end=run.window_end, options=retrain_options
    )
    return retrain_options, prepared


def register_run(
    session: Session, run_id: uuid.UUID, *, trained: TrainedCandidate, options: RetrainOptions
) -> TrainingRun:
    """A claimed run's last step: gate and register its trained candidate, record the
    outcome. Errors propagate, so that the caller's transaction rolls back, registration
    included."""
    from server.training import service as training_service

    _running(session, run_id)
    result = training_service.register_candidate(
        session, actor=Actor.system(SYSTEM_ACTOR), trained=trained, options=options
    )
    return record_result(session, run_id, result)


def record_result(session: Session, run_id: uuid.UUID, result: RetrainResult) -> TrainingRun:
    """Finish a run with what retraining gave: registered or rejected, and why."""
    verdict = result.gate
    reason: str | None
    if result.model_id is None:
        state, reason = RunState.REJECTED, verdict.reason if verdict else "rejected"
    elif not result.created:
        state, reason = RunState.REGISTERED, "a model trained on this snapshot is registered"
    else:
        state, reason = RunState.REGISTERED, verdict.reason if verdict else None
    if result.rollout_error:
        reason = f"{reason}; no automatic rollout: {result.rollout_error}"
    _finish(
        session,
        run_id,
        state=state,
        reason=reason,
        snapshot_key=result.snapshot.key,
        model_id=result.model_id,
        gate=verdict.model_dump(mode="json") if verdict else None,
    )
    logger.info("training run %s %s: %s", run_id, state.value, reason)
    return get_run(session, run_id)


def fail_run(session: Session, run_id: uuid.UUID, *, error: str) -> TrainingRun:
    """Record a run that could not finish."""
    run = get_run(session, run_id)
    if run.state in (RunState.QUEUED, RunState.RUNNING):
        run.state = RunState.FAILED
        run.running_lock = None
        run.finished_at = utcnow()
        run.error = error[:4000]
        session.flush()
    return run


def release_run(session: Session, run_id: uuid.UUID) -> TrainingRun:
    """Give a running run back to the queue (a transient failure; the task retries)."""
    run = get_run(session, run_id)
    if run.state is RunState.RUNNING:
        run.state = RunState.QUEUED
        run.running_lock = None
        run.started_at = None
        session.flush()
    return run


def in_progress(session: Session) -> TrainingRun | None:
    """A run running or queued, unless presumed dead (a queued run whose task was lost
    must not hold drift back for ever)."""
    now = utcnow()
    holder = running_run(session, now=now)
    if holder is not None:
        return holder
    return session.scalar(
        select(TrainingRun)
        .where(
            TrainingRun.state == RunState.QUEUED,
            TrainingRun.created_at >= _stale_before(now),
        )
        .limit(1)
    )


def request_scheduled(session: Session, *, now: datetime | None = None) -> TrainingRun | None:
    """The schedule's run; None when the schedule is off or already asked this period
    (the beat may deliver twice)."""
    hours = get_settings().training.schedule_hours
    if not hours:
        return None
    now = now or utcnow()
    recent = session.scalar(
        select(TrainingRun.id)
        .where(
            TrainingRun.trigger == RunTrigger.SCHEDULE,
            TrainingRun.created_at > now - timedelta(hours=hours / 2),
        )
        .limit(1)
    )
    if recent is not None:
        return None
    return request_run(
        session,
        actor=Actor.system(SYSTEM_ACTOR),
        trigger=RunTrigger.SCHEDULE,
        evidence={"schedule_hours": hours, "due_at": now.isoformat()},
    )


def last_drift_run(session: Session) -> TrainingRun | None:
    return session.scalar(
        select(TrainingRun)
        .where(TrainingRun.trigger == RunTrigger.DRIFT, TrainingRun.state != RunState.SKIPPED)
        .order_by(TrainingRun.created_at.desc(), TrainingRun.id.desc())
        .limit(1)
    )


def check_drift_and_retrain(
    session: Session, *, now: datetime | None = None
) -> tuple[DriftCheck | None, TrainingRun | None]:
    """Check the stable model for drift; when a check fires, no run is in progress and
    the cool-down since the last drift-triggered run has passed, ask for a run with the
    checks as evidence. Returns the check and the run, if one was asked for."""
    settings = get_settings().training
    now = now or utcnow()
    check = check_drift(session, model_name=settings.model_name, now=now)
    if check is None or not check.fired:
        return check, None
    fired = ", ".join(result.check for result in check.fired)
    busy = in_progress(session)
    if busy is not None:
        logger.info("drift (%s) while run %s is %s: no new run", fired, busy.id, busy.state.value)
        return check, None
    last = last_drift_run(session)
    cooldown = timedelta(hours=settings.drift_cooldown_hours)
    if last is not None and last.created_at > now - cooldown:
        logger.info(
            "drift (%s) within %g h of drift run %s: no new run",
            fired,
            settings.drift_cooldown_hours,
            last.id,
        )
        return check, None
    run = request_run(
        session,
        actor=Actor.system(SYSTEM_ACTOR),
        trigger=RunTrigger.DRIFT,
        evidence=check.evidence(),
    )
    return check, run
