"""Drift checks against the stable model, and the runs they trigger."""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from sqlalchemy.orm import Session

from edge_agent.features import FEATURE_NAMES, FeatureExtractor
from edge_agent.protocol.transaction import Transaction
from edge_agent.simulator import Simulator, SimulatorConfig
from server.anomalies import service as anomalies_service
from server.anomalies.orm import EventKind, Label
from server.core.config import get_settings
from server.core.db import utcnow
from server.registry import service as registry_service
from server.registry.orm import ModelStage, ModelVersion
from server.training import drift, runs
from server.training.orm import RunState, RunTrigger
from server.training.profile import build_profile
from tests.factories import enroll_device, telemetry_window
from tests.server.training.fleet import ACTOR, event_ids, wire

SHIFTED = "card_amount_zscore"


def _traffic(
    seed: int, n: int, start: datetime
) -> tuple[list[Transaction], npt.NDArray[np.float32]]:
    config = SimulatorConfig(seed=seed, fraud_rate=0.01, start=start)
    transactions = Simulator(config).generate(n)
    return transactions, FeatureExtractor().transform_many(transactions)


def _stable(
    session: Session,
    *,
    profile: bool = True,
    precision: float = 0.8,
    recall: float | None = None,
    label: str | None = None,
) -> ModelVersion:
    """A stable model as the drift checks see it: its label, metrics and lineage."""
    name = "fraud"
    version = 1 + len(session.query(ModelVersion).all())
    lineage: dict[str, Any] = {"source": "test"}
    if profile:
        # Trained on the same hours of the same weekday as _recent's traffic: which
        # regions are open (so the amounts and currencies seen) follows the clock.
        _, reference = _traffic(1, 3_000, _noon(8))
        lineage["feature_profile"] = build_profile(reference).model_dump(mode="json")
    model = ModelVersion(
        name=name,
        version=version,
        label=label or f"{name}-{version}",
        stage=ModelStage.STABLE,
        feature_spec_version=1,
        quantization="float32",
        threshold=0.5,
        sha256="0" * 64,
        size_bytes=1,
        manifest="{}",
        signature="x",
        signing_key_id=registry_service.active_signing_key(session).id,
        artifact_prefix=f"models/{name}/{version}",
        metrics={"precision": precision, "pr_auc": 0.8}
        | ({} if recall is None else {"recall": recall}),
        lineage=lineage,
        created_by="test",
    )
    session.add(model)
    session.flush()
    return model


Store = Callable[..., list[int]]


@pytest.fixture
def device_id(db_session: Session) -> uuid.UUID:
    return enroll_device(db_session).device.id


@pytest.fixture
def store(db_session: Session, device_id: uuid.UUID) -> Store:
    """Store scored events as the ingest does; returns their ids."""
    rng = random.Random(5)

    def store_(
        transactions: list[Transaction],
        vectors: npt.NDArray[np.float32],
        *,
        kind: EventKind = EventKind.SAMPLE,
        model_version: str = "fraud-1",
    ) -> list[int]:
        events = [
            wire(
                tx, vector, flagged=kind is EventKind.ANOMALY, rng=rng, model_version=model_version
            )
            for tx, vector in zip(transactions, vectors, strict=True)
        ]
        rows = anomalies_service.event_rows(kind, device_id, None, utcnow(), events)
        assert anomalies_service.store_events(db_session, rows) == len(rows)
        return event_ids(db_session, [tx.transaction_id for tx in transactions])

    return store_


def _noon(days_ago: int) -> datetime:
    return (utcnow() - timedelta(days=days_ago)).replace(hour=12, minute=0, second=0, microsecond=0)


def _recent(
    seed: int = 2, n: int = 1_200
) -> tuple[list[Transaction], npt.NDArray[np.float32], datetime]:
    """A busy stretch of traffic and the "now" just after it, inside one drift window."""
    transactions, vectors = _traffic(seed, n, _noon(1))
    now = transactions[-1].timestamp + timedelta(seconds=1)
    assert now - transactions[0].timestamp < timedelta(minutes=60)
    return transactions, vectors, now


def _by_name(check: drift.DriftCheck) -> dict[str, drift.CheckResult]:
    return {result.check: result for result in check.checks}


def test_unshifted_samples_do_not_fire(db_session: Session, store: Store) -> None:
    _stable(db_session)
    transactions, vectors, now = _recent()
    store(transactions, vectors)
    check = drift.check_drift(db_session, model_name="fraud", now=now)
    assert check is not None
    shift = _by_name(check)[drift.FEATURE_SHIFT]
    assert shift.evaluated
    assert not shift.fired, shift.detail
    assert shift.numbers["recent_samples"] == len(transactions)
    assert shift.numbers["reference"] == "the model's training data"
    assert shift.numbers["shifted_features"] == []
    assert all(item["psi"] <= 0.2 for item in shift.numbers["top_features"])
    # No telemetry and no labels: no verdict either way.
    assert not _by_name(check)[drift.FLAG_RATE].evaluated
    assert not _by_name(check)[drift.PRECISION].evaluated
    assert check.fired == []
    assert runs.check_drift_and_retrain(db_session, now=now) == (check, None)


def test_shifted_samples_fire_and_ask_for_one_run(db_session: Session, store: Store) -> None:
    _stable(db_session)
    transactions, vectors, now = _recent()
    vectors[:, FEATURE_NAMES.index(SHIFTED)] += 2.0
    store(transactions, vectors)

    check, run = runs.check_drift_and_retrain(db_session, now=now)
    assert check is not None
    shift = _by_name(check)[drift.FEATURE_SHIFT]
    assert shift.fired
    assert shift.numbers["shifted_features"] == [SHIFTED]
    assert shift.numbers["top_features"][0]["feature"] == SHIFTED
    assert shift.numbers["top_features"][0]["psi"] > 0.2
    assert SHIFTED in shift.detail

    assert run is not None
    assert run.trigger is RunTrigger.DRIFT
    assert run.state is RunState.QUEUED
    assert run.evidence["fired"] == [drift.FEATURE_SHIFT]
    assert run.evidence["model_label"] == "fraud-1"
    recorded = {item["check"]: item for item in run.evidence["checks"]}
    assert recorded[drift.FEATURE_SHIFT]["numbers"]["shifted_features"] == [SHIFTED]
    assert recorded[drift.FEATURE_SHIFT]["numbers"]["recent_samples"] == len(transactions)

    # A run is in progress: no second one.
    assert runs.check_drift_and_retrain(db_session, now=now)[1] is None
    # Finished, but within the cool-down: none either.
    run.state = RunState.REJECTED
    db_session.flush()
    assert runs.check_drift_and_retrain(db_session, now=now)[1] is None
    # After the cool-down, drift asks again.
    run.created_at = now - timedelta(hours=25)
    db_session.flush()
    again = runs.check_drift_and_retrain(db_session, now=now)[1]
    assert again is not None
    assert again.id != run.id


def test_too_few_samples_give_no_verdict(db_session: Session, store: Store) -> None:
    _stable(db_session)
    transactions, vectors, now = _recent(n=1_200)
    vectors[:, FEATURE_NAMES.index(SHIFTED)] += 2.0
    store(transactions[-100:], vectors[-100:])
    check = drift.check_drift(db_session, model_name="fraud", now=now)
    assert check is not None
    shift = _by_name(check)[drift.FEATURE_SHIFT]
    assert not shift.evaluated
    assert not shift.fired
    assert "100 recent samples" in shift.detail


def test_no_stable_model_no_check(db_session: Session) -> None:
    assert drift.check_drift(db_session, model_name="fraud") is None
    assert runs.check_drift_and_retrain(db_session) == (None, None)


def test_a_model_without_profile_is_compared_with_its_first_window(
    db_session: Session, store: Store
) -> None:
    model = _stable(db_session, profile=False)
    first, first_vectors = _traffic(3, 1_200, _noon(3))
    store(first, first_vectors, model_version=model.label)
    transactions, vectors, now = _recent()
    store(transactions, vectors, model_version=model.label)

    calm = _by_name(drift.check_drift(db_session, model_name="fraud", now=now))  # type: ignore[arg-type]
    assert calm[drift.FEATURE_SHIFT].evaluated
    assert not calm[drift.FEATURE_SHIFT].fired, calm[drift.FEATURE_SHIFT].detail
    reference = calm[drift.FEATURE_SHIFT].numbers["reference"]
    assert "no training profile" in reference
    assert model.label in reference

    later, later_vectors = _traffic(4, 1_200, _noon(2))
    later_vectors[:, FEATURE_NAMES.index(SHIFTED)] -= 2.0
    store(later, later_vectors, model_version="fraud-2")
    later_now = later[-1].timestamp + timedelta(seconds=1)
    shifted = _by_name(drift.check_drift(db_session, model_name="fraud", now=later_now))  # type: ignore[arg-type]
    assert shifted[drift.FEATURE_SHIFT].fired
    assert shifted[drift.FEATURE_SHIFT].numbers["shifted_features"] == [SHIFTED]


def _telemetry(
    session: Session, device_id: uuid.UUID, *, at: datetime, scored: int, flagged: int, model: str
) -> None:
    session.add(telemetry_window(device_id, model, scored=scored, flagged=flagged, sent_at=at))
    session.flush()


@pytest.mark.parametrize(("recent_flagged", "fires"), [(150, True), (2, True), (30, False)])
def test_flag_rate(
    db_session: Session, device_id: uuid.UUID, recent_flagged: int, fires: bool
) -> None:
    model = _stable(db_session)
    now = utcnow()
    _telemetry(
        db_session,
        device_id,
        at=now - timedelta(hours=5),
        scored=20_000,
        flagged=100,
        model=model.label,
    )
    _telemetry(
        db_session,
        device_id,
        at=now - timedelta(minutes=10),
        scored=5_000,
        flagged=recent_flagged,
        model=model.label,
    )
    # Another model's flags are not the stable model's.
    _telemetry(
        db_session,
        device_id,
        at=now - timedelta(minutes=5),
        scored=5_000,
        flagged=4_000,
        model="fraud-9",
    )
    check = drift.check_drift(db_session, model_name="fraud", now=now)
    assert check is not None
    result = _by_name(check)[drift.FLAG_RATE]
    assert result.evaluated
    assert result.fired is fires, result.detail
    assert result.numbers["recent_scored"] == 5_000
    assert result.numbers["reference_rate"] == pytest.approx(0.005)
    assert result.numbers["recent_rate"] == pytest.approx(recent_flagged / 5_000)
    assert [c.check for c in check.fired] == ([drift.FLAG_RATE] if fires else [])
    _, run = runs.check_drift_and_retrain(db_session, now=now)
    assert (run is not None) is fires
    if run is not None:
        assert run.evidence["fired"] == [drift.FLAG_RATE]


def test_flag_rate_needs_enough_traffic(db_session: Session, device_id: uuid.UUID) -> None:
    model = _stable(db_session)
    now = utcnow()
    _telemetry(
        db_session,
        device_id,
        at=now - timedelta(hours=5),
        scored=20_000,
        flagged=100,
        model=model.label,
    )
    _telemetry(
        db_session,
        device_id,
        at=now - timedelta(minutes=10),
        scored=500,
        flagged=400,
        model=model.label,
    )
    result = _by_name(drift.check_drift(db_session, model_name="fraud", now=now))[drift.FLAG_RATE]  # type: ignore[arg-type]
    assert not result.evaluated
    assert not result.fired


@pytest.mark.parametrize(("confirmed", "fires"), [(10, True), (36, False)])
def test_precision_on_labelled_anomalies(
    db_session: Session, store: Store, confirmed: int, fires: bool
) -> None:
    model = _stable(db_session, precision=0.8)
    transactions, vectors = _traffic(6, 60, _noon(2))
    ids = store(transactions, vectors, kind=EventKind.ANOMALY, model_version=model.label)
    anomalies_service.label_events(
        db_session, actor=ACTOR, ids=ids[:confirmed], label=Label.CONFIRMED_FRAUD
    )
    anomalies_service.label_events(
        db_session, actor=ACTOR, ids=ids[confirmed:40], label=Label.FALSE_POSITIVE
    )
    check = drift.check_drift(db_session, model_name="fraud", now=utcnow())
    assert check is not None
    result = _by_name(check)[drift.PRECISION]
    assert result.evaluated
    assert result.fired is fires, result.detail
    assert result.numbers["confirmed_fraud"] == confirmed
    assert result.numbers["false_positives"] == 40 - confirmed
    assert result.numbers["recent_precision"] == pytest.approx(confirmed / 40)
    assert result.numbers["test_precision"] == 0.8


def test_precision_waits_for_labels_to_settle(db_session: Session, store: Store) -> None:
    """Reviews of false alarms come before chargebacks: the newest anomalies would make
    precision look low, so they count only once their labels have had time to come."""
    model = _stable(db_session, precision=0.8)
    transactions, vectors = _traffic(6, 60, utcnow() - timedelta(hours=2))
    ids = store(transactions, vectors, kind=EventKind.ANOMALY, model_version=model.label)
    anomalies_service.label_events(
        db_session, actor=ACTOR, ids=ids[:10], label=Label.CONFIRMED_FRAUD
    )
    anomalies_service.label_events(
        db_session, actor=ACTOR, ids=ids[10:40], label=Label.FALSE_POSITIVE
    )
    settle = get_settings().training.label_settle_hours
    for hours_later, evaluated in ((0.0, False), (settle, True)):
        now = utcnow() + timedelta(hours=hours_later)
        result = _by_name(drift.check_drift(db_session, model_name="fraud", now=now))[  # type: ignore[arg-type]
            drift.PRECISION
        ]
        assert result.evaluated is evaluated, result.detail
        assert result.fired is evaluated
        assert result.numbers["settle_hours"] == settle


def test_precision_needs_enough_labels(db_session: Session, store: Store) -> None:
    model = _stable(db_session, precision=0.8)
    transactions, vectors = _traffic(6, 20, _noon(2))
    ids = store(transactions, vectors, kind=EventKind.ANOMALY, model_version=model.label)
    anomalies_service.label_events(db_session, actor=ACTOR, ids=ids, label=Label.FALSE_POSITIVE)
    result = _by_name(drift.check_drift(db_session, model_name="fraud"))[drift.PRECISION]  # type: ignore[arg-type]
    assert not result.evaluated
    assert "20 labelled anomalies" in result.detail


@pytest.mark.parametrize(
    ("caught", "charged_back_samples", "fires"),
    [
        # 100 samples of 1,000 unflagged payments: each charged-back sample stands for 10.
        (10, 10, True),  # about 10 caught of 110: recall 0.09
        (40, 1, False),  # about 40 caught of 50: recall 0.8
    ],
)
def test_recall_from_chargebacks_on_samples(
    db_session: Session,
    store: Store,
    device_id: uuid.UUID,
    caught: int,
    charged_back_samples: int,
    fires: bool,
) -> None:
    model = _stable(db_session, recall=0.8)
    transactions, vectors = _traffic(8, 100 + caught, _noon(1))
    flagged = store(
        transactions[:caught], vectors[:caught], kind=EventKind.ANOMALY, model_version=model.label
    )
    sampled = store(transactions[caught:], vectors[caught:], model_version=model.label)
    anomalies_service.label_events(
        db_session, actor=ACTOR, ids=flagged, label=Label.CONFIRMED_FRAUD
    )
    anomalies_service.label_events(
        db_session,
        actor=ACTOR,
        ids=sampled[:charged_back_samples],
        label=Label.CONFIRMED_FRAUD,
    )
    now = utcnow()
    _telemetry(
        db_session,
        device_id,
        at=now - timedelta(minutes=1),
        scored=1_000 + caught,
        flagged=caught,
        model=model.label,
    )
    check = drift.check_drift(db_session, model_name="fraud", now=now + timedelta(seconds=1))
    assert check is not None
    result = _by_name(check)[drift.RECALL]
    assert result.evaluated, result.detail
    assert result.fired is fires, result.detail
    assert result.numbers["sample_share"] == pytest.approx(0.1)
    assert result.numbers["estimated_missed"] == pytest.approx(charged_back_samples * 10)
    expected = caught / (caught + charged_back_samples * 10)
    assert result.numbers["recent_recall"] == pytest.approx(expected)


def test_recall_needs_enough_labelled_fraud(db_session: Session, store: Store) -> None:
    model = _stable(db_session, recall=0.8)
    transactions, vectors = _traffic(8, 30, _noon(1))
    ids = store(transactions, vectors, kind=EventKind.ANOMALY, model_version=model.label)
    anomalies_service.label_events(
        db_session, actor=ACTOR, ids=ids[:5], label=Label.CONFIRMED_FRAUD
    )
    result = _by_name(drift.check_drift(db_session, model_name="fraud"))[drift.RECALL]  # type: ignore[arg-type]
    assert not result.evaluated
    assert "5 labelled frauds" in result.detail
