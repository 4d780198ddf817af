"""Training runs end to end on fleet data: the gate against the stable model decides
whether a candidate is registered, and the run records why."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import Engine, func, select

from server.core.config import get_settings
from server.core.db import session_scope
from server.registry import service as registry_service
from server.registry.orm import ModelStage, ModelVersion
from server.rollouts.orm import Rollout
from server.training import runs
from server.training.model import MlpConfig
from server.training.orm import RunState, RunTrigger
from server.training.service import RetrainOptions
from server.training.tasks import execute_run
from tests.server.training.fleet import ACTOR, Seeded, seed_fleet

GOOD = RetrainOptions(mlp=MlpConfig(hidden_units=(32, 16), epochs=15, batch_size=64, seed=1))
# A network that barely moves from its random start: a model far worse than GOOD.
BAD = RetrainOptions(mlp=MlpConfig(hidden_units=(2,), epochs=1, learning_rate=1e-7, seed=3))


@pytest.fixture
def seeded(committed_db: Engine) -> Seeded:
    return seed_fleet(transactions=4_000, seed=13)


def _run(seeded: Seeded, *, extra: timedelta, options: RetrainOptions) -> uuid.UUID:
    """Ask for a run over the fleet's range (moved by ``extra``, a new snapshot) and run it."""
    with session_scope() as session:
        run = runs.request_run(
            session,
            actor=ACTOR,
            trigger=RunTrigger.ON_DEMAND,
            window_start=seeded.start,
            window_end=seeded.end + extra,
        )
        run_id = run.id
    execute_run(run_id, options=options)
    return run_id


def _models() -> int:
    with session_scope() as session:
        return session.scalar(select(func.count()).select_from(ModelVersion)) or 0


def test_the_gate_registers_a_better_candidate_and_rejects_a_worse_one(
    seeded: Seeded, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Nothing stable yet: whatever trains is registered.
    first_id = _run(seeded, extra=timedelta(0), options=BAD)
    with session_scope() as session:
        first = runs.get_run(session, first_id)
        assert first.state is RunState.REGISTERED, first.error
        assert first.gate is not None
        assert first.gate["passed"] is True
        assert first.reason == "no stable model to compare"
        assert first.started_at is not None
        assert first.finished_at is not None
        assert first.running_lock is None
        assert first.snapshot_key is not None
        assert first.model_id is not None
        weak = registry_service.get_model(session, first.model_id)
        weak.stage = ModelStage.STABLE
        weak_label = weak.label

    # A better candidate passes, and with auto_start its rollout begins.
    monkeypatch.setattr(get_settings().rollouts, "auto_start", True)
    second_id = _run(seeded, extra=timedelta(minutes=1), options=GOOD)
    with session_scope() as session:
        second = runs.get_run(session, second_id)
        assert second.state is RunState.REGISTERED, second.error
        assert second.gate is not None
        gate = second.gate
        assert gate["passed"] is True
        assert gate["stable_label"] == weak_label
        assert gate["candidate"]["pr_auc"] > gate["stable"]["pr_auc"]
        assert gate["test_rows"] > 0
        assert gate["margins"] == {"pr_auc": 0.01, "recall": 0.02, "false_positive_rate": 0.01}
        assert second.reason is not None
        assert second.reason.startswith("not worse than stable")
        assert second.model_id is not None
        strong = registry_service.get_model(session, second.model_id)
        assert strong.lineage["gate"] == gate
        assert strong.lineage["parent_version_id"] == str(first.model_id)
        assert session.scalar(select(Rollout).where(Rollout.model_id == strong.id)) is not None
        weak = registry_service.get_model(session, first.model_id)
        weak.stage = ModelStage.RETIRED
        strong.stage = ModelStage.STABLE
    monkeypatch.setattr(get_settings().rollouts, "auto_start", False)

    # A worse candidate is refused: nothing is registered, the run says why.
    registered = _models()
    third_id = _run(seeded, extra=timedelta(minutes=2), options=BAD)
    with session_scope() as session:
        third = runs.get_run(session, third_id)
        assert third.state is RunState.REJECTED, third.gate
        assert third.model_id is None
        assert third.snapshot_key is not None
        assert third.snapshot_key != second.snapshot_key
        assert third.gate is not None
        assert third.gate["passed"] is False
        assert third.gate["stable_label"] == strong.label
        assert third.gate["candidate"]["pr_auc"] < third.gate["stable"]["pr_auc"] - 0.01
        assert third.reason is not None
        assert third.reason.startswith("worse than stable beyond the margin: PR-AUC")
    assert _models() == registered

    # Run again, a finished run stays as it was.
    assert execute_run(third_id, options=BAD) is RunState.REJECTED


def test_a_run_that_cannot_train_is_failed_with_the_reason(committed_db: Engine) -> None:
    with session_scope() as session:
        run = runs.request_run(session, actor=ACTOR, trigger=RunTrigger.ON_DEMAND)
        run_id = run.id
    assert execute_run(run_id, options=BAD) is RunState.FAILED
    with session_scope() as session:
        failed = runs.get_run(session, run_id)
        assert failed.error is not None
        assert "no usable scored events" in failed.error
        assert failed.running_lock is None
        assert runs.running_run(session) is None
