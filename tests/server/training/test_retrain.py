"""Retraining from fleet data: the ``training.retrain`` task, run in process on events
that simulated traffic, the agent's feature code and labels put in the database."""

from __future__ import annotations

import io
import json
import random
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from edge_agent.features import FEATURE_SPEC_VERSION, N_FEATURES, FeatureExtractor
from edge_agent.protocol.messages import ScoredEvent as WireEvent
from edge_agent.protocol.transaction import Transaction
from edge_agent.simulator import Simulator, SimulatorConfig
from server.anomalies import service as anomalies_service
from server.anomalies.orm import EventKind, Label, ScoredEvent
from server.anomalies.schemas import ChargebackCreate
from server.common.actor import Actor
from server.core.db import session_scope, utcnow
from server.registry import service as registry_service
from server.registry.orm import ModelStage
from server.storage.service import get_object_store
from server.training.tasks import retrain
from tests.factories import enroll_device

TRANSACTIONS = 4_000
ACTOR = Actor.system("test")


@dataclass(frozen=True)
class Seeded:
    start: datetime
    end: datetime
    fraud: int
    """Fraud transactions: every one is labelled, by an operator or a chargeback."""
    false_positives: int
    unlabelled_anomalies: list[str]
    """Transaction ids of flagged legitimate payments nobody reviewed."""


def _wire(
    tx: Transaction, features: list[float], *, flagged: bool, rng: random.Random
) -> WireEvent:
    return WireEvent.model_validate(
        {
            "event_id": uuid.uuid4(),
            "transaction": tx,
            "features": features,
            "feature_spec_version": FEATURE_SPEC_VERSION,
            "score": rng.uniform(0.6, 1.0) if flagged else rng.uniform(0.0, 0.4),
            "threshold": 0.5,
            "flagged": flagged,
            "model_version": "fraud-0",
            "scored_at": tx.timestamp,
        }
    )


def _ids(session: Session, transaction_ids: list[str]) -> list[int]:
    return list(
        session.scalars(
            select(ScoredEvent.id).where(ScoredEvent.transaction_id.in_(transaction_ids))
        )
    )


def _seed() -> Seeded:
    """Fraud is uploaded as anomalies (a fifth of it missed, as samples); about 4% of
    legitimate traffic is flagged too. Operators confirm half the flagged fraud,
    chargebacks the rest and the missed fraud; two thirds of the false alarms are
    marked false positives and the rest are left unreviewed."""
    rng = random.Random(11)
    simulator = Simulator(SimulatorConfig(seed=11, fraud_rate=0.05))
    transactions = simulator.generate(TRANSACTIONS)
    truth = {label.transaction_id: label.is_fraud for label in simulator.labels.drain()}
    vectors = FeatureExtractor().transform_many(transactions)
    anomalies: list[WireEvent] = []
    samples: list[WireEvent] = []
    confirmed: list[str] = []
    charged_back: list[str] = []
    false_positives: list[str] = []
    unreviewed: list[str] = []
    for tx, vector in zip(transactions, vectors, strict=True):
        features = [float(v) for v in vector]
        if truth[tx.transaction_id]:
            missed = rng.random() < 0.2
            (samples if missed else anomalies).append(
                _wire(tx, features, flagged=not missed, rng=rng)
            )
            (charged_back if missed or rng.random() < 0.5 else confirmed).append(tx.transaction_id)
        elif rng.random() < 0.04:
            anomalies.append(_wire(tx, features, flagged=True, rng=rng))
            (false_positives if rng.random() < 2 / 3 else unreviewed).append(tx.transaction_id)
        else:
            samples.append(_wire(tx, features, flagged=False, rng=rng))
    with session_scope() as session:
        device = enroll_device(session, name="pos-retrain").device
        for kind, events in ((EventKind.ANOMALY, anomalies), (EventKind.SAMPLE, samples)):
            rows = anomalies_service.event_rows(kind, device.id, None, utcnow(), events)
            assert anomalies_service.store_events(session, rows) == len(events)
    with session_scope() as session:
        for label, wanted in (
            (Label.CONFIRMED_FRAUD, confirmed),
            (Label.FALSE_POSITIVE, false_positives),
        ):
            anomalies_service.label_events(
                session, actor=ACTOR, ids=_ids(session, wanted), label=label
            )
        anomalies_service.import_chargebacks(
            session,
            actor=ACTOR,
            chargebacks=[ChargebackCreate(transaction_id=t) for t in charged_back],
        )
    return Seeded(
        start=transactions[0].timestamp,
        end=transactions[-1].timestamp + timedelta(seconds=1),
        fraud=len(confirmed) + len(charged_back),
        false_positives=len(false_positives),
        unlabelled_anomalies=unreviewed,
    )


@pytest.fixture
def seeded(committed_db: Engine) -> Seeded:
    return _seed()


def test_retrain_snapshots_trains_registers_once(seeded: Seeded) -> None:
    start, end = seeded.start.isoformat(), seeded.end.isoformat()
    excluded = len(seeded.unlabelled_anomalies)
    assert seeded.fraud > 100
    assert excluded > 10

    first = retrain(start, end)
    assert first["created"] is True

    # The snapshot: every event but the unreviewed anomalies, fraud as the positives.
    store = get_object_store()
    key = str(first["snapshot"])
    assert key.startswith("datasets/")
    assert key.endswith(".npz")
    manifest = json.loads(store.get(key.removesuffix(".npz") + ".json"))
    assert manifest["rows"] == TRANSACTIONS - excluded
    assert manifest["positives"] == seeded.fraud
    assert manifest["excluded_unlabelled_anomalies"] == excluded
    assert manifest["feature_spec_version"] == FEATURE_SPEC_VERSION
    assert set(manifest["positives_by_source"]) == {"operator", "chargeback"}
    with np.load(io.BytesIO(store.get(key)), allow_pickle=False) as arrays:
        assert arrays["features"].shape == (TRANSACTIONS - excluded, N_FEATURES)
        assert int(arrays["labels"].sum()) == seeded.fraud
        assert np.all(np.diff(arrays["timestamps"]) >= 0)

    # The candidate, with its lineage.
    with session_scope() as session:
        model = registry_service.get_model(session, uuid.UUID(str(first["model_id"])))
        assert model.stage is ModelStage.CANDIDATE
        assert model.lineage["source"] == "retraining"
        assert model.lineage["dataset_snapshot"] == key
        assert model.lineage["parent_version_id"] is None
        assert model.lineage["code_version"].startswith("edgeplane ")
        assert 0.0 <= model.metrics["pr_auc"] <= 1.0
        assert model.metrics["test_positives"] > 0
        first_label = model.label

    # The same range and labels again: nothing new.
    again = retrain(start, end)
    assert again == {**first, "created": False}

    # Once it is stable and a reviewer catches up, the range is a new snapshot, and the
    # new candidate names the stable model as its parent.
    with session_scope() as session:
        registry_service.get_model(
            session, uuid.UUID(str(first["model_id"]))
        ).stage = ModelStage.STABLE
        anomalies_service.label_events(
            session,
            actor=ACTOR,
            ids=_ids(session, seeded.unlabelled_anomalies),
            label=Label.FALSE_POSITIVE,
        )
    second = retrain(start, end)
    assert second["created"] is True
    assert second["snapshot"] != key
    with session_scope() as session:
        child = registry_service.get_model(session, uuid.UUID(str(second["model_id"])))
        assert child.lineage["parent_version_id"] == str(first["model_id"])
        assert child.label != first_label
    manifest = json.loads(store.get(str(second["snapshot"]).removesuffix(".npz") + ".json"))
    assert manifest["rows"] == TRANSACTIONS
    assert manifest["excluded_unlabelled_anomalies"] == 0
