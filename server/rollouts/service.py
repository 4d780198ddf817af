"""Desired state and rollouts: which model each device should run, and how a new model
gets there.

Desired state is served over REST and published as a retained MQTT message per device
after the transaction that changed it commits; devices follow it. Rollouts decide it:
a rollout assigns its model to a growing cohort of its target, step by step, and after
each step's soak compares the canary devices with the stable ones (``analysis``). A
failed analysis sets every canary device back to the stable model.

Cohorts are deterministic: devices are ranked by a hash of (rollout id, device id) and
a step takes the first ``ceil(percent * target / 100)`` of them, plus every device an earlier
step took, so a device keeps its cohort across restarts and steps only add devices.
"""

from __future__ import annotations

import hashlib
import logging
import math
import uuid
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Select, case, func, insert, select, update
from sqlalchemy.orm import Session

from edge_agent.protocol.artifact import MANIFEST_FILE, MODEL_FILE
from edge_agent.protocol.messages import DesiredModel
from edge_agent.protocol.messages import DesiredState as DesiredStateMessage
from edge_agent.protocol.topics import Channel, device_topic
from server.anomalies.orm import EventKind, Label, ScoredEvent
from server.audit import service as audit_service
from server.common.actor import Actor
from server.common.pagination import PageParams, paginate
from server.core.config import get_settings
from server.core.db import after_commit, utcnow
from server.devices import service as devices_service
from server.devices.orm import Device, DeviceStatus
from server.ingest.orm import TelemetryWindow
from server.registry import service as registry_service
from server.registry.orm import ModelStage
from server.rollouts.analysis import CohortNumbers, analyse
from server.rollouts.exceptions import RolloutConflict, RolloutNotFound, RolloutStateError
from server.rollouts.orm import (
    DesiredState,
    Rollout,
    RolloutAnalysis,
    RolloutEvent,
    RolloutState,
)
from server.rollouts.schemas import (
    AnalysisRead,
    AnalysisThresholds,
    RolloutCreate,
    RolloutDefaults,
    RolloutEventRead,
    RolloutRead,
    RolloutStep,
    RolloutTarget,
    TargetKind,
    default_steps,
)

if TYPE_CHECKING:
    from server.registry.orm import ModelVersion

logger = logging.getLogger(__name__)

PUBLISH_TASK = "rollouts.publish_desired"
_PENDING = "edgeplane.rollouts.pending_publish"
# Rows per IN (...) list: well under SQLite's bound-parameter limit.
_CHUNK = 5_000


def _chunks(items: Sequence[uuid.UUID]) -> Iterator[Sequence[uuid.UUID]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


# Desired state


def assign_model(
    session: Session,
    *,
    actor: Actor,
    device_ids: Sequence[uuid.UUID],
    model_id: uuid.UUID | None,
    rollout_id: uuid.UUID | None = None,
) -> int:
    """Set the desired model of devices (None: run no model). Published after the commit.

    Set-based, so a step of a hundred thousand devices is a few statements, not a
    hundred thousand objects. Devices already in that state are left alone.
    """
    if model_id is not None:
        registry_service.get_model(session, model_id)
    changed: list[uuid.UUID] = []
    now = utcnow()
    for chunk in _chunks(list(dict.fromkeys(device_ids))):
        current: dict[uuid.UUID, tuple[uuid.UUID | None, uuid.UUID | None]] = {
            device_id: (current_model, current_rollout)
            for device_id, current_model, current_rollout in session.execute(
                select(
                    DesiredState.device_id, DesiredState.model_id, DesiredState.rollout_id
                ).where(DesiredState.device_id.in_(chunk))
            )
        }
        new = [device_id for device_id in chunk if device_id not in current]
        stale = [
            device_id
            for device_id in chunk
            if device_id in current and current[device_id] != (model_id, rollout_id)
        ]
        if new:
            session.execute(
                insert(DesiredState),
                [
                    {
                        "device_id": device_id,
                        "model_id": model_id,
                        "rollout_id": rollout_id,
                        "generation": 1,
                        "updated_at": now,
                    }
                    for device_id in new
                ],
            )
        if stale:
            session.execute(
                update(DesiredState)
                .where(DesiredState.device_id.in_(stale))
                .values(
                    model_id=model_id,
                    rollout_id=rollout_id,
                    generation=DesiredState.generation + 1,
                    updated_at=now,
                )
                .execution_options(synchronize_session=False)
            )
        changed += new + stale
    if changed:
        session.expire_all()
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
    states: dict[uuid.UUID, tuple[uuid.UUID | None, uuid.UUID | None, int]] = {}
    for chunk in _chunks(device_ids):
        for device_id, model_id, rollout_id, generation in session.execute(
            select(
                DesiredState.device_id,
                DesiredState.model_id,
                DesiredState.rollout_id,
                DesiredState.generation,
            ).where(DesiredState.device_id.in_(chunk))
        ):
            states[device_id] = (model_id, rollout_id, generation)
    base = get_settings().public_url.rstrip("/")
    models: dict[uuid.UUID, DesiredModel] = {}
    now = utcnow()
    messages = []
    for device_id in device_ids:
        model_id, rollout_id, generation = states.get(device_id, (None, None, 0))
        desired_model = None
        if model_id is not None:
            desired_model = models.get(model_id)
            if desired_model is None:
                desired_model = models[model_id] = _desired_model(
                    registry_service.get_model(session, model_id), base
                )
        messages.append(
            DesiredStateMessage(
                device_id=str(device_id),
                generation=generation,
                model=desired_model,
                rollout_id=str(rollout_id) if rollout_id else None,
                issued_at=now,
            )
        )
    return messages


def _desired_model(model: ModelVersion, base_url: str) -> DesiredModel:
    files = f"{base_url}/api/v1/agent/models/{model.id}/files"
    return DesiredModel(
        name=model.name,
        version=model.label,
        url=f"{files}/{MODEL_FILE}",
        manifest_url=f"{files}/{MANIFEST_FILE}",
        sha256=model.sha256,
        signature=model.signature,
        feature_spec_version=model.feature_spec_version,
    )


def desired_for_device(session: Session, device_id: uuid.UUID) -> DesiredStateMessage:
    devices_service.get_device(session, device_id)
    return desired_messages(session, [device_id])[0]


def retained_payloads(messages: Sequence[DesiredStateMessage]) -> list[tuple[str, bytes]]:
    return [
        (device_topic(message.device_id, Channel.DESIRED), message.model_dump_json().encode())
        for message in messages
    ]


# Rollouts: planning


def cohort_rank(rollout_id: uuid.UUID, device_id: uuid.UUID) -> bytes:
    """A device's place in a rollout's order: stable for the rollout, random across them."""
    return hashlib.blake2b(rollout_id.bytes + device_id.bytes, digest_size=8).digest()


def target_device_ids(session: Session, target: RolloutTarget) -> list[uuid.UUID]:
    """Devices a target names, revoked ones left out."""
    statement = select(Device.id).where(Device.status != DeviceStatus.REVOKED)
    if target.kind is TargetKind.CLUSTERS:
        statement = statement.where(Device.cluster_id.in_(target.cluster_ids))
    if target.kind is not TargetKind.SELECTOR:
        return list(session.scalars(statement))
    wanted = target.labels.items()
    return [
        device_id
        for device_id, labels in session.execute(statement.add_columns(Device.labels))
        if labels and wanted <= labels.items()
    ]


def _cohort_ids(session: Session, rollout: Rollout) -> list[uuid.UUID]:
    """Devices this rollout has assigned its model to (and not yet taken back)."""
    return list(
        session.scalars(
            select(DesiredState.device_id).where(
                DesiredState.rollout_id == rollout.id, DesiredState.model_id == rollout.model_id
            )
        )
    )


def _steps(rollout: Rollout) -> list[RolloutStep]:
    return [RolloutStep.model_validate(step) for step in rollout.steps]


def _event(
    session: Session,
    rollout: Rollout,
    *,
    kind: str,
    actor: Actor,
    message: str,
    details: dict[str, Any] | None = None,
) -> None:
    session.add(
        RolloutEvent(
            rollout_id=rollout.id,
            at=utcnow(),
            kind=kind,
            actor=actor.name,
            message=message,
            details=details or {},
        )
    )


def _plan_step(session: Session, rollout: Rollout, *, actor: Actor) -> int:
    """Assign the model to the current step's cohort; returns how many devices were added."""
    step = _steps(rollout)[rollout.current_step]
    target = target_device_ids(session, RolloutTarget.model_validate(rollout.target))
    already = set(_cohort_ids(session, rollout))
    wanted = math.ceil(step.percent / 100 * len(target))
    ranked = sorted(target, key=lambda device_id: cohort_rank(rollout.id, device_id))
    added = [device_id for device_id in ranked[:wanted] if device_id not in already]
    assign_model(
        session, actor=actor, device_ids=added, model_id=rollout.model_id, rollout_id=rollout.id
    )
    rollout.target_size = len(target)
    rollout.cohort_size = len(already) + len(added)
    rollout.step_started_at = utcnow()
    _event(
        session,
        rollout,
        kind="step_started",
        actor=actor,
        message=f"step {rollout.current_step + 1} of {len(rollout.steps)}: {step.percent:g}% "
        f"({rollout.cohort_size} of {rollout.target_size} devices, {len(added)} added)",
        details={
            "step": rollout.current_step,
            "percent": step.percent,
            "added": len(added),
            "cohort": rollout.cohort_size,
            "target": rollout.target_size,
        },
    )
    return len(added)


def defaults() -> RolloutDefaults:
    return RolloutDefaults(steps=default_steps(), thresholds=AnalysisThresholds())


def start_rollout(session: Session, *, actor: Actor, data: RolloutCreate) -> Rollout:
    """Start rolling a model out: its first step's cohort gets it at once."""
    model = registry_service.get_model(session, data.model_id)
    if model.stage in (ModelStage.STABLE, ModelStage.RETIRED):
        raise RolloutStateError(f"{model.label} is {model.stage.value}: only a candidate rolls out")
    key = data.target.key
    active = session.scalar(select(Rollout).where(Rollout.active_target_key == key))
    if active is not None:
        raise RolloutConflict(
            f"rollout {active.id} is already {active.state.value} on this target; "
            "finish, abort or wait for it first",
            rollout_id=str(active.id),
        )
    baseline = registry_service.stable_model(session, name=model.name)
    rollout = Rollout(
        id=uuid.uuid4(),
        model_id=model.id,
        baseline_model_id=baseline.id if baseline else None,
        target=data.target.model_dump(mode="json"),
        target_key=key,
        active_target_key=key,
        steps=[step.model_dump(mode="json") for step in data.steps],
        thresholds=data.thresholds.model_dump(mode="json"),
        state=RolloutState.RUNNING,
        current_step=0,
        created_by=actor.name,
        created_at=utcnow(),
    )
    session.add(rollout)
    session.flush()
    model.stage = ModelStage.CANARY
    _event(
        session,
        rollout,
        kind="started",
        actor=actor,
        message=f"{model.label} rolling out to {key} against "
        f"{baseline.label if baseline else 'no stable model'}",
        details={"model": model.label, "baseline": baseline.label if baseline else None},
    )
    _plan_step(session, rollout, actor=actor)
    audit_service.record(
        session,
        actor=actor,
        action="rollout.start",
        target_type="rollout",
        target_id=rollout.id,
        details={"model": model.label, "target": key},
    )
    logger.info("rollout %s of %s started on %s", rollout.id, model.label, key)
    return rollout


def start_automatic_rollout(session: Session, *, actor: Actor, model_id: uuid.UUID) -> Rollout:
    """A rollout to every device with the steps in settings, for a freshly retrained model."""
    settings = get_settings().rollouts
    soak = settings.auto_soak_seconds
    steps = [RolloutStep(percent=p, soak_seconds=soak) for p in settings.auto_step_percents]
    thresholds = AnalysisThresholds(min_scored=settings.auto_min_scored)
    return start_rollout(
        session,
        actor=actor,
        data=RolloutCreate(model_id=model_id, steps=steps, thresholds=thresholds),
    )


# Rollouts: analysis and decisions


def _cohort_query(rollout: Rollout) -> Select[uuid.UUID]:
    """Devices this rollout has assigned its model to, as a subquery."""
    return select(DesiredState.device_id).where(
        DesiredState.rollout_id == rollout.id, DesiredState.model_id == rollout.model_id
    )


def _stable_side(session: Session, rollout: Rollout) -> Select[uuid.UUID] | list[uuid.UUID]:
    """The target's devices outside the cohort: a subquery where SQL can say which devices
    a target names, else (label selectors) the list."""
    target = RolloutTarget.model_validate(rollout.target)
    if target.kind is TargetKind.SELECTOR:
        cohort = set(_cohort_ids(session, rollout))
        return [d for d in target_device_ids(session, target) if d not in cohort]
    statement = select(Device.id).where(
        Device.status != DeviceStatus.REVOKED, Device.id.not_in(_cohort_query(rollout))
    )
    if target.kind is TargetKind.CLUSTERS:
        statement = statement.where(Device.cluster_id.in_(target.cluster_ids))
    return statement


def _device_filters(column: Any, devices: Select[uuid.UUID] | Sequence[uuid.UUID]) -> Iterator[Any]:
    """``column IN devices``: one condition for a subquery, one per chunk for a list."""
    if isinstance(devices, Select):
        yield column.in_(devices)
        return
    for chunk in _chunks(devices):
        yield column.in_(chunk)


def _cohort_numbers(
    session: Session,
    *,
    devices: Select[uuid.UUID] | Sequence[uuid.UUID],
    model_version: str,
    since: datetime,
    count_all_load_failures: bool,
) -> CohortNumbers:
    """Telemetry and labels of ``devices`` on ``model_version`` since ``since``, summed
    by the database. Load failures are counted across every version when asked: a device
    that cannot load the new model keeps reporting on the old one."""
    devices_on_model = scored = flagged = errors = failures = 0
    latency_weighted = 0.0
    fraud = false_positives = 0
    for condition in _device_filters(TelemetryWindow.device_id, devices):
        rows = session.execute(
            select(
                TelemetryWindow.model_version,
                func.count(func.distinct(TelemetryWindow.device_id)),
                func.sum(TelemetryWindow.scored),
                func.sum(TelemetryWindow.flagged),
                func.sum(TelemetryWindow.inference_errors),
                func.sum(TelemetryWindow.model_load_failures),
                func.sum(TelemetryWindow.latency_p95_ms * TelemetryWindow.scored),
            )
            .where(TelemetryWindow.sent_at >= since, condition)
            .group_by(TelemetryWindow.model_version)
        )
        for version, n_devices, n_scored, n_flagged, n_errors, n_failures, weighted in rows:
            if count_all_load_failures or version == model_version:
                failures += int(n_failures or 0)
            if version != model_version:
                continue
            devices_on_model += int(n_devices)
            scored += int(n_scored or 0)
            flagged += int(n_flagged or 0)
            errors += int(n_errors or 0)
            latency_weighted += float(weighted or 0.0)
    for condition in _device_filters(ScoredEvent.device_id, devices):
        labelled = session.execute(
            select(
                func.count(case((ScoredEvent.label == Label.CONFIRMED_FRAUD, 1))),
                func.count(case((ScoredEvent.label == Label.FALSE_POSITIVE, 1))),
            ).where(
                ScoredEvent.kind == EventKind.ANOMALY,
                ScoredEvent.model_version == model_version,
                ScoredEvent.scored_at >= since,
                condition,
            )
        ).one()
        fraud += int(labelled[0])
        false_positives += int(labelled[1])
    return CohortNumbers(
        devices=devices_on_model,
        scored=scored,
        flagged=flagged,
        inference_errors=errors,
        model_load_failures=failures,
        latency_p95_ms=latency_weighted / scored if scored else 0.0,
        confirmed_fraud=fraud,
        false_positives=false_positives,
    )


def analyse_rollout(session: Session, rollout: Rollout, *, now: datetime) -> AnalysisRead:
    """Canary devices on the new model against the rest of the target on the stable one,
    over telemetry sent since the rollout started."""
    model = registry_service.get_model(session, rollout.model_id)
    cohort_size = int(
        session.scalar(select(func.count()).select_from(_cohort_query(rollout).subquery())) or 0
    )
    canary = _cohort_numbers(
        session,
        devices=_cohort_query(rollout),
        model_version=model.label,
        since=rollout.created_at,
        count_all_load_failures=True,
    )
    stable = None
    if rollout.baseline_model_id is not None:
        baseline = registry_service.get_model(session, rollout.baseline_model_id)
        stable = _cohort_numbers(
            session,
            devices=_stable_side(session, rollout),
            model_version=baseline.label,
            since=rollout.created_at,
            count_all_load_failures=False,
        )
    step = _steps(rollout)[rollout.current_step]
    soaked = (now - rollout.step_started_at).total_seconds()
    return analyse(
        at=now,
        step=rollout.current_step,
        canary=canary,
        stable=stable,
        limits=AnalysisThresholds.model_validate(rollout.thresholds),
        cohort_devices=cohort_size,
        min_devices=step.min_devices,
        soak_remaining_seconds=step.soak_seconds - soaked,
    )


def _finish(rollout: Rollout, state: RolloutState, decision: str) -> None:
    rollout.state = state
    rollout.active_target_key = None
    rollout.finished_at = utcnow()
    rollout.decision = decision


def _take_back(session: Session, rollout: Rollout, *, actor: Actor) -> int:
    """Every device this rollout gave its model goes back to the stable model."""
    cohort = _cohort_ids(session, rollout)
    return assign_model(session, actor=actor, device_ids=cohort, model_id=rollout.baseline_model_id)


def _roll_back(session: Session, rollout: Rollout, analysis: AnalysisRead) -> None:
    system = Actor.system("rollouts")
    devices = _take_back(session, rollout, actor=system)
    model = registry_service.get_model(session, rollout.model_id)
    model.stage = ModelStage.RETIRED
    failed = [check.model_dump(mode="json") for check in analysis.checks if check.passed is False]
    _finish(rollout, RolloutState.ROLLED_BACK, f"rolled back: {analysis.reason}")
    _event(
        session,
        rollout,
        kind="rolled_back",
        actor=system,
        message=f"analysis failed at step {analysis.step + 1}: {analysis.reason}; "
        f"{devices} devices sent back to the stable model",
        details={"failed_checks": failed, "devices": devices},
    )
    audit_service.record(
        session,
        actor=system,
        action="rollout.roll_back",
        target_type="rollout",
        target_id=rollout.id,
        details={"reason": analysis.reason, "devices": devices},
    )
    logger.warning("rollout %s rolled back: %s", rollout.id, analysis.reason)


def _complete(session: Session, rollout: Rollout, *, actor: Actor, how: str) -> None:
    """Everything in the target on the new model, which becomes the stable one."""
    target = target_device_ids(session, RolloutTarget.model_validate(rollout.target))
    assign_model(
        session, actor=actor, device_ids=target, model_id=rollout.model_id, rollout_id=rollout.id
    )
    model = registry_service.get_model(session, rollout.model_id)
    if rollout.baseline_model_id is not None:
        registry_service.get_model(session, rollout.baseline_model_id).stage = ModelStage.RETIRED
    model.stage = ModelStage.STABLE
    rollout.cohort_size = rollout.target_size = len(target)
    _finish(rollout, RolloutState.SUCCEEDED, how)
    _event(
        session,
        rollout,
        kind="promoted",
        actor=actor,
        message=f"{model.label} is stable: {how}",
        details={"devices": len(target)},
    )
    audit_service.record(
        session,
        actor=actor,
        action="rollout.promote",
        target_type="rollout",
        target_id=rollout.id,
        details={"model": model.label, "how": how},
    )
    logger.info("rollout %s promoted %s (%s)", rollout.id, model.label, how)


def advance(session: Session, rollout: Rollout, *, now: datetime | None = None) -> AnalysisRead:
    """Analyse a running rollout and act on the verdict: roll back, next step, or wait."""
    now = now or utcnow()
    analysis = analyse_rollout(session, rollout, now=now)
    session.add(
        RolloutAnalysis(
            rollout_id=rollout.id,
            at=analysis.at,
            step=analysis.step,
            verdict=analysis.verdict,
            payload=analysis.model_dump(mode="json"),
        )
    )
    if analysis.verdict == "fail":
        _roll_back(session, rollout, analysis)
    elif analysis.verdict == "pass":
        system = Actor.system("rollouts")
        _event(
            session,
            rollout,
            kind="analysis_passed",
            actor=system,
            message=f"step {analysis.step + 1} passed: {analysis.reason}",
            details=analysis.model_dump(mode="json"),
        )
        if rollout.current_step + 1 >= len(rollout.steps):
            _complete(session, rollout, actor=system, how="every step passed its analysis")
        else:
            rollout.current_step += 1
            _plan_step(session, rollout, actor=system)
    return analysis


def running_rollout_ids(session: Session) -> list[uuid.UUID]:
    return list(
        session.scalars(
            select(Rollout.id)
            .where(Rollout.state == RolloutState.RUNNING)
            .order_by(Rollout.created_at)
        )
    )


def advance_by_id(session: Session, rollout_id: uuid.UUID) -> AnalysisRead | None:
    """Advance one rollout if it is still running, locked so two workers never both do."""
    rollout = session.scalar(
        select(Rollout).where(Rollout.id == rollout_id).with_for_update(skip_locked=True)
    )
    if rollout is None or rollout.state is not RolloutState.RUNNING:
        return None
    return advance(session, rollout)


# Rollouts: operator actions


def get_rollout(session: Session, rollout_id: uuid.UUID) -> Rollout:
    rollout = session.get(Rollout, rollout_id)
    if rollout is None:
        raise RolloutNotFound(f"rollout {rollout_id} does not exist")
    return rollout


def _locked(session: Session, rollout_id: uuid.UUID) -> Rollout:
    rollout = session.scalar(select(Rollout).where(Rollout.id == rollout_id).with_for_update())
    if rollout is None:
        raise RolloutNotFound(f"rollout {rollout_id} does not exist")
    return rollout


def _require(rollout: Rollout, *states: RolloutState, action: str) -> None:
    if rollout.state not in states:
        raise RolloutStateError(
            f"cannot {action} a rollout that is {rollout.state.value}",
            state=rollout.state.value,
        )


def _operator_event(session: Session, rollout: Rollout, *, actor: Actor, action: str) -> None:
    _event(session, rollout, kind=action, actor=actor, message=f"{action} by {actor.name}")
    audit_service.record(
        session,
        actor=actor,
        action=f"rollout.{action}",
        target_type="rollout",
        target_id=rollout.id,
    )


def pause(session: Session, *, actor: Actor, rollout_id: uuid.UUID) -> Rollout:
    """Hold the rollout where it is: no analysis, no next step, devices keep their model."""
    rollout = _locked(session, rollout_id)
    _require(rollout, RolloutState.RUNNING, action="pause")
    rollout.state = RolloutState.PAUSED
    _operator_event(session, rollout, actor=actor, action="paused")
    return rollout


def resume(session: Session, *, actor: Actor, rollout_id: uuid.UUID) -> Rollout:
    rollout = _locked(session, rollout_id)
    _require(rollout, RolloutState.PAUSED, action="resume")
    rollout.state = RolloutState.RUNNING
    _operator_event(session, rollout, actor=actor, action="resumed")
    return rollout


def promote(session: Session, *, actor: Actor, rollout_id: uuid.UUID) -> Rollout:
    """Skip the remaining steps: the whole target gets the model, which becomes stable."""
    rollout = _locked(session, rollout_id)
    _require(rollout, RolloutState.RUNNING, RolloutState.PAUSED, action="promote")
    _complete(session, rollout, actor=actor, how=f"promoted by {actor.name}")
    return rollout


def abort(session: Session, *, actor: Actor, rollout_id: uuid.UUID) -> Rollout:
    """Stop, and send every canary device back to the stable model."""
    rollout = _locked(session, rollout_id)
    _require(rollout, RolloutState.RUNNING, RolloutState.PAUSED, action="abort")
    devices = _take_back(session, rollout, actor=actor)
    registry_service.get_model(session, rollout.model_id).stage = ModelStage.CANDIDATE
    _finish(rollout, RolloutState.ABORTED, f"aborted by {actor.name}")
    _event(
        session,
        rollout,
        kind="aborted",
        actor=actor,
        message=f"aborted by {actor.name}; {devices} devices sent back to the stable model",
        details={"devices": devices},
    )
    audit_service.record(
        session, actor=actor, action="rollout.abort", target_type="rollout", target_id=rollout.id
    )
    return rollout


# Rollouts: reading


def list_rollouts(
    session: Session, *, params: PageParams, state: RolloutState | None = None
) -> tuple[list[Rollout], str | None]:
    statement = select(Rollout)
    if state is not None:
        statement = statement.where(Rollout.state == state)
    return paginate(
        session,
        statement,
        order_by=[Rollout.created_at, Rollout.id],
        params=params,
        descending=True,
    )


def _latest_analyses(
    session: Session, rollout_ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, AnalysisRead]:
    ids = list(rollout_ids)
    if not ids:
        return {}
    newest = (
        select(func.max(RolloutAnalysis.id))
        .where(RolloutAnalysis.rollout_id.in_(ids))
        .group_by(RolloutAnalysis.rollout_id)
    )
    return {
        row.rollout_id: AnalysisRead.model_validate(row.payload)
        for row in session.scalars(select(RolloutAnalysis).where(RolloutAnalysis.id.in_(newest)))
    }


def to_read(session: Session, rollouts: Sequence[Rollout]) -> list[RolloutRead]:
    analyses = _latest_analyses(session, (rollout.id for rollout in rollouts))
    labels = registry_service.labels(
        session,
        [rollout.model_id for rollout in rollouts]
        + [rollout.baseline_model_id for rollout in rollouts],
    )

    def label(model_id: uuid.UUID | None) -> str | None:
        return None if model_id is None else labels.get(model_id)

    return [
        RolloutRead(
            id=rollout.id,
            model_id=rollout.model_id,
            model_label=label(rollout.model_id) or "",
            baseline_model_id=rollout.baseline_model_id,
            baseline_label=label(rollout.baseline_model_id),
            target=RolloutTarget.model_validate(rollout.target),
            steps=_steps(rollout),
            thresholds=AnalysisThresholds.model_validate(rollout.thresholds),
            state=rollout.state,
            current_step=rollout.current_step,
            step_started_at=rollout.step_started_at,
            target_size=rollout.target_size,
            cohort_size=rollout.cohort_size,
            decision=rollout.decision,
            created_by=rollout.created_by,
            created_at=rollout.created_at,
            finished_at=rollout.finished_at,
            last_analysis=analyses.get(rollout.id),
        )
        for rollout in rollouts
    ]


def timeline(session: Session, rollout_id: uuid.UUID) -> list[RolloutEventRead]:
    get_rollout(session, rollout_id)
    return [
        RolloutEventRead.model_validate(event)
        for event in session.scalars(
            select(RolloutEvent)
            .where(RolloutEvent.rollout_id == rollout_id)
            .order_by(RolloutEvent.id)
        )
    ]


def analyses(session: Session, rollout_id: uuid.UUID, *, limit: int = 500) -> list[AnalysisRead]:
    """The newest ``limit`` analyses, oldest first."""
    get_rollout(session, rollout_id)
    rows = list(
        session.scalars(
            select(RolloutAnalysis.payload)
            .where(RolloutAnalysis.rollout_id == rollout_id)
            .order_by(RolloutAnalysis.id.desc())
            .limit(limit)
        )
    )
    return [AnalysisRead.model_validate(payload) for payload in reversed(rows)]
