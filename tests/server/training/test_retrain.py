"""Retraining from fleet data: the ``training.retrain`` task, run in process on events
that simulated traffic, the agent's feature code and labels put in the database."""

from __future__ import annotations

import io
import json
import uuid
from datetime import timedelta

import numpy as np
import pytest
from sqlalchemy import Engine, func, select

from edge_agent.features import FEATURE_SPEC_VERSION, N_FEATURES
from server.anomalies import service as anomalies_service
from server.anomalies.orm import EventKind, Label, ScoredEvent
from server.core.db import session_scope, utcnow
from server.registry import service as registry_service
from server.registry.orm import ModelStage
from server.storage.service import get_object_store
from server.training.snapshot import build_snapshot
from server.training.tasks import retrain
from tests.factories import enroll_device, telemetry_window
from tests.server.training.fleet import ACTOR, Seeded, event_ids, seed_fleet

TRANSACTIONS = 4_000


@pytest.fixture
def seeded(committed_db: Engine) -> Seeded:
    return seed_fleet(transactions=TRANSACTIONS)


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
        assert model.lineage["gate"]["passed"] is True
        assert model.lineage["gate"]["reason"] == "no stable model to compare"
        assert len(model.lineage["feature_profile"]["features"]) == N_FEATURES
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
            ids=event_ids(session, seeded.unlabelled_anomalies),
            label=Label.FALSE_POSITIVE,
        )
    second = retrain(start, end)
    assert second["created"] is True
    assert second["snapshot"] != key
    with session_scope() as session:
        child = registry_service.get_model(session, uuid.UUID(str(second["model_id"])))
        assert child.lineage["parent_version_id"] == str(first["model_id"])
        assert child.lineage["gate"]["stable_label"] == first_label
        assert child.lineage["gate"]["stable"]["pr_auc"] > 0
        assert child.label != first_label
    manifest = json.loads(store.get(str(second["snapshot"]).removesuffix(".npz") + ".json"))
    assert manifest["rows"] == TRANSACTIONS
    assert manifest["excluded_unlabelled_anomalies"] == 0


def test_unlabelled_samples_wait_for_their_chargebacks(committed_db: Engine) -> None:
    """Until a sample's chargeback could have come, it is no evidence of legitimate
    traffic: the snapshot leaves it out, keeps every label, and counts what it left."""
    seeded = seed_fleet(transactions=TRANSACTIONS, start=utcnow() - timedelta(hours=2))
    end = seeded.end + timedelta(seconds=1)
    with session_scope() as session:
        settled = build_snapshot(session, start=seeded.start, end=end, settled_before=end)
        fresh = build_snapshot(
            session, start=seeded.start, end=end, settled_before=seeded.start
        ).manifest
    assert settled.manifest.excluded_unsettled_samples == 0
    assert fresh.excluded_unsettled_samples > 0
    assert fresh.rows + fresh.excluded_unsettled_samples == settled.manifest.rows
    assert fresh.positives == settled.manifest.positives == seeded.fraud
    assert fresh.excluded_unlabelled_anomalies == len(seeded.unlabelled_anomalies)
    assert fresh.id != settled.manifest.id


def test_a_sample_weighs_what_it_stands_for(committed_db: Engine) -> None:
    """Devices uploaded every anomaly but a share of the rest: with telemetry counting
    four unflagged transactions per sample received, each sample row weighs four."""
    seeded = seed_fleet(transactions=TRANSACTIONS, start=utcnow() - timedelta(hours=2))
    end = utcnow() + timedelta(minutes=1)
    with session_scope() as session:
        unweighted = build_snapshot(session, start=seeded.start, end=end, settled_before=end)
        assert unweighted.manifest.sample_weight == 1.0
        assert unweighted.manifest.sample_weight_basis.startswith("none")
        samples = (
            session.scalar(select(func.count()).where(ScoredEvent.kind == EventKind.SAMPLE)) or 0
        )
        device = enroll_device(session, name="pos-telemetry").device.id
        session.add(
            telemetry_window(
                device, "fraud-1", scored=4 * samples + 500, flagged=500, sent_at=utcnow()
            )
        )
        weighted = build_snapshot(session, start=seeded.start, end=end, settled_before=end)
    assert weighted.manifest.sample_weight == pytest.approx(4.0)
    assert weighted.manifest.id != unweighted.manifest.id
    weights = weighted.dataset.weights
    assert weights is not None
    assert sorted(set(weights.tolist())) == [1.0, 4.0]
    assert int(np.sum(weights == 4.0)) == samples
