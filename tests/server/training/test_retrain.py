"""Retraining from fleet data: the ``training.retrain`` task, run in process on events
that simulated traffic, the agent's feature code and labels put in the database."""

from __future__ import annotations

import io
import json
import uuid

import numpy as np
import pytest
from sqlalchemy import Engine

from edge_agent.features import FEATURE_SPEC_VERSION, N_FEATURES
from server.anomalies import service as anomalies_service
from server.anomalies.orm import Label
from server.core.db import session_scope
from server.registry import service as registry_service
from server.registry.orm import ModelStage
from server.storage.service import get_object_store
from server.training.tasks import retrain
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
