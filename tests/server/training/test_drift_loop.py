"""The drift scenario, through the services a deployment runs: a new fraud pattern
starts, the drift check sees it, retraining produces a candidate that catches it, and
the rollout promotes that candidate.

The fleet is simulated and scored with the real models (the agent's TFLite loader);
what devices would upload (anomalies, a quarter of the rest as samples, telemetry) is
stored as the ingest stores it, and the card network's chargebacks and an operator's
reviews label it. PostgreSQL, the object store and real training; no stand-ins.
"""

from __future__ import annotations

import json
import random
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from sqlalchemy import Engine, select

from edge_agent.features import FeatureExtractor
from edge_agent.protocol.messages import ScoredEvent as WireEvent
from edge_agent.protocol.transaction import Transaction
from edge_agent.simulator import FraudType, Simulator
from server.anomalies import service as anomalies_service
from server.anomalies.orm import EventKind, Label
from server.anomalies.schemas import ChargebackCreate
from server.core.config import get_settings
from server.core.db import session_scope, utcnow
from server.registry import service as registry_service
from server.registry.orm import ModelStage
from server.registry.schemas import ModelMetadata
from server.rollouts import service as rollouts_service
from server.rollouts.orm import DesiredState, Rollout, RolloutState
from server.rollouts.schemas import RolloutCreate
from server.training import drift, runs
from server.training import model as mlp
from server.training.dataset import TrafficConfig
from server.training.evaluation import evaluate
from server.training.model import MlpConfig
from server.training.orm import RunState, RunTrigger
from server.training.profile import build_profile
from server.training.service import RetrainOptions, TrainingResult
from server.training.tasks import execute_run
from tests.factories import enroll_device, telemetry_window
from tests.server.training.fleet import ACTOR, event_ids, wire

DEVICES = 8
SEEN = 86_000
"""Transactions the fleet scored before the check: two days at half a transaction a second."""
LATER = 16_000
SAMPLE_SHARE = 0.25
DRIFT_RATE = 0.1
SHIFT = FraudType.MERCHANT_SHIFT.value
RESULTS_FILE = Path(__file__).resolve().parents[3] / "var" / "drift-loop.json"
RETRAIN = RetrainOptions(mlp=MlpConfig(hidden_units=(32, 16), epochs=20, batch_size=64, seed=5))


@dataclass
class Traffic:
    transactions: list[Transaction]
    features: npt.NDArray[np.float32]
    fraud_types: list[str | None]

    @property
    def labels(self) -> npt.NDArray[np.int8]:
        return np.array([kind is not None for kind in self.fraud_types], dtype=np.int8)

    def kinds(self) -> npt.NDArray[np.str_]:
        return np.array([kind or "" for kind in self.fraud_types])

    def rows(self, start: int, end: int) -> Traffic:
        return Traffic(
            self.transactions[start:end], self.features[start:end], self.fraud_types[start:end]
        )


def traffic(*, seed: int, start: datetime, n: int, drift_at: datetime) -> Traffic:
    """``n`` POS transactions from ``start`` (about half a transaction a second, every
    region's rhythm); the new pattern on from ``drift_at``."""
    config = (
        TrafficConfig(seed=seed, transactions_per_second=0.5, fraud_rate=0.01)
        .simulator_config()
        .model_copy(update={"start": start, "drift_at": drift_at, "drift_rate": DRIFT_RATE})
    )
    simulator = Simulator(config)
    transactions = simulator.generate(n)
    truth = {label.transaction_id: label for label in simulator.labels.drain()}
    return Traffic(
        transactions=transactions,
        features=FeatureExtractor().transform_many(transactions),
        fraud_types=[
            None if (kind := truth[tx.transaction_id].fraud_type) is None else kind.value
            for tx in transactions
        ],
    )


def upload(
    traffic: Traffic,
    *,
    model_bytes: bytes,
    threshold: float,
    label: str,
    devices: Sequence[uuid.UUID],
    seed: int,
) -> float:
    """Score ``traffic`` on ``devices`` (round robin) with one model and store what they
    would upload; then chargebacks for every fraud and reviews of the false alarms.
    Returns the model's flag rate."""
    rng = random.Random(seed)
    scores = mlp.tflite_scores(model_bytes, traffic.features)
    uploads: dict[tuple[uuid.UUID, EventKind], list[WireEvent]] = defaultdict(list)
    counts: dict[uuid.UUID, list[int]] = {device: [0, 0] for device in devices}
    fraud: list[str] = []
    false_alarms: list[str] = []
    last = traffic.transactions[-1].timestamp
    received = last + timedelta(seconds=1)
    for index, (tx, vector, score, kind) in enumerate(
        zip(traffic.transactions, traffic.features, scores, traffic.fraud_types, strict=True)
    ):
        device = devices[index % len(devices)]
        flagged = bool(score >= threshold)
        counts[device][0] += 1
        counts[device][1] += int(flagged)
        if kind is not None:
            fraud.append(tx.transaction_id)
        elif flagged:
            false_alarms.append(tx.transaction_id)
        if flagged or rng.random() < SAMPLE_SHARE:
            event = wire(tx, vector, flagged=flagged, rng=rng, model_version=label)
            event = event.model_copy(update={"score": float(score), "threshold": threshold})
            uploads[(device, EventKind.ANOMALY if flagged else EventKind.SAMPLE)].append(event)
    with session_scope() as session:
        for (device, kind), events in uploads.items():
            rows = anomalies_service.event_rows(kind, device, None, received, events)
            anomalies_service.store_events(session, rows)
        for device, (scored, flags) in counts.items():
            session.add(telemetry_window(device, label, scored=scored, flagged=flags, sent_at=last))
    with session_scope() as session:
        anomalies_service.import_chargebacks(
            session, actor=ACTOR, chargebacks=[ChargebackCreate(transaction_id=t) for t in fraud]
        )
        anomalies_service.label_events(
            session,
            actor=ACTOR,
            ids=event_ids(session, false_alarms),
            label=Label.FALSE_POSITIVE,
        )
    return float(np.mean(scores >= threshold))


def recall_on_shift(model_bytes: bytes, threshold: float, traffic: Traffic) -> float:
    scores = mlp.tflite_scores(model_bytes, traffic.features)
    metrics = evaluate(traffic.labels, scores, traffic.kinds(), threshold=threshold)
    return metrics.recall_by_type[SHIFT]


def test_a_new_pattern_is_detected_retrained_on_and_promoted(
    committed_db: Engine, trained: TrainingResult, monkeypatch: pytest.MonkeyPatch
) -> None:
    rollout_settings = get_settings().rollouts
    monkeypatch.setattr(rollout_settings, "auto_start", True)
    monkeypatch.setattr(rollout_settings, "auto_step_percents", [50.0, 100.0])
    monkeypatch.setattr(rollout_settings, "auto_soak_seconds", 0)
    monkeypatch.setattr(rollout_settings, "auto_min_scored", 200)
    # Every label here is given as soon as the traffic is stored: nothing to wait for.
    monkeypatch.setattr(get_settings().training, "label_settle_hours", 0.0)

    # The fleet runs a model trained before the pattern existed.
    manifest = trained.manifest
    stable_bytes = trained.model_bytes[manifest.quantization]
    with session_scope() as session:
        devices = [enroll_device(session, name=f"pos-drift-{i}").device.id for i in range(DEVICES)]
        stable = registry_service.register_model(
            session,
            actor=ACTOR,
            model_bytes=stable_bytes,
            metadata=ModelMetadata.from_manifest(manifest),
            source="training",
        )
        stable.lineage = {
            **stable.lineage,
            "feature_profile": build_profile(trained.split.train.features).model_dump(mode="json"),
        }
        first = rollouts_service.start_rollout(
            session, actor=ACTOR, data=RolloutCreate(model_id=stable.id)
        )
        rollouts_service.promote(session, actor=ACTOR, rollout_id=first.id)
        stable_id, stable_label, threshold = stable.id, stable.label, stable.threshold

    # One world of cards and stores, warm throughout: two days of the fleet's traffic up
    # to now, the new pattern in the second (the stable model lets most of it through);
    # then the hours after, for the comparison and the rollout.
    start = utcnow() - timedelta(hours=48)
    world = traffic(seed=21, start=start, n=SEEN + 2 * LATER, drift_at=start + timedelta(hours=24))
    seen = world.rows(0, SEEN)
    upload(
        seen,
        model_bytes=stable_bytes,
        threshold=threshold,
        label=stable_label,
        devices=devices,
        seed=1,
    )

    # The worker's drift check, once the last of it has arrived.
    now = seen.transactions[-1].timestamp + timedelta(seconds=2)
    with session_scope() as session:
        check, requested = runs.check_drift_and_retrain(session, now=now)
        assert check is not None
        assert requested is not None
        assert requested.trigger is RunTrigger.DRIFT
        assert drift.RECALL in requested.evidence["fired"], check.checks
        recall_numbers = {c.check: c for c in check.checks}[drift.RECALL].numbers
        run_id = requested.id

    state = execute_run(run_id, options=RETRAIN)
    with session_scope() as session:
        run = runs.get_run(session, run_id)
        assert state is RunState.REGISTERED, run.reason or run.error
        assert run.gate is not None
        gate = run.gate
        assert run.gate["passed"] is True
        assert run.gate["stable_label"] == stable_label
        assert run.gate["candidate"]["pr_auc"] > run.gate["stable"]["pr_auc"]
        assert run.model_id is not None
        candidate = registry_service.get_model(session, run.model_id)
        assert candidate.stage is ModelStage.CANARY, "retraining started its rollout"
        assert candidate.lineage["parent_version_id"] == str(stable_id)
        candidate_id, candidate_label = candidate.id, candidate.label
        candidate_threshold = candidate.threshold
        candidate_bytes = registry_service.artifact_file(candidate, "model.tflite")
        rollout_id = session.scalars(
            select(Rollout.id).where(Rollout.model_id == candidate_id)
        ).one()

    # On traffic neither model has seen, the candidate catches the new pattern.
    held_out = world.rows(SEEN, SEEN + LATER)
    before = recall_on_shift(stable_bytes, threshold, held_out)
    after = recall_on_shift(candidate_bytes, candidate_threshold, held_out)
    assert after > before + 0.3, (before, after)
    results: dict[str, object] = {
        "stable_test_recall": manifest.metrics["recall"],
        "estimated_fleet_recall": recall_numbers["recent_recall"],
        "gate": gate,
        f"recall_on_{SHIFT}_before": before,
        f"recall_on_{SHIFT}_after": after,
    }
    steps: list[dict[str, dict[str, float | None]]] = []

    # The rollout: the canary half scores the next hours with the candidate, the rest
    # with the stable model, and the analysis compares them, step by step.
    next_hours = world.rows(SEEN + LATER, SEEN + 2 * LATER)
    half = LATER // 2
    for step, (first_row, end_row) in enumerate(((0, half), (half, LATER))):
        with session_scope() as session:
            cohort = set(
                session.scalars(
                    select(DesiredState.device_id).where(DesiredState.model_id == candidate_id)
                )
            )
        assert len(cohort) == DEVICES * (step + 1) // 2
        part = next_hours.rows(first_row, end_row)
        canary_part, stable_part = split_by(part, step)
        upload(
            canary_part,
            model_bytes=candidate_bytes,
            threshold=candidate_threshold,
            label=candidate_label,
            devices=sorted(cohort),
            seed=10 + step,
        )
        rest = sorted(set(devices) - cohort)
        if rest:
            upload(
                stable_part,
                model_bytes=stable_bytes,
                threshold=threshold,
                label=stable_label,
                devices=rest,
                seed=20 + step,
            )
        with session_scope() as session:
            analysis = rollouts_service.advance(
                session,
                rollouts_service.get_rollout(session, rollout_id),
                now=part.transactions[-1].timestamp + timedelta(seconds=1),
            )
            assert analysis.verdict == "pass", analysis.reason
            steps.append(
                {c.metric: {"canary": c.canary, "stable": c.stable} for c in analysis.checks}
            )

    with session_scope() as session:
        rollout = rollouts_service.get_rollout(session, rollout_id)
        assert rollout.state is RolloutState.SUCCEEDED, rollout.decision
        assert registry_service.get_model(session, candidate_id).stage is ModelStage.STABLE
        assert registry_service.get_model(session, stable_id).stage is ModelStage.RETIRED
    RESULTS_FILE.parent.mkdir(exist_ok=True)
    RESULTS_FILE.write_text(json.dumps(results | {"rollout_steps": steps}, indent=2))


def split_by(traffic: Traffic, step: int) -> tuple[Traffic, Traffic]:
    """At the first step half the fleet is canary: half the traffic each; at the last the
    whole fleet is, and the canary side scores everything."""
    n = len(traffic.transactions)
    if step > 0:
        return traffic, traffic.rows(n, n)
    return traffic.rows(0, n // 2), traffic.rows(n // 2, n)
