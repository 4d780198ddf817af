"""Fleet data for retraining tests: simulated traffic, scored with the agent's feature
code, stored as the ingest stores it, and labelled by operators and chargebacks."""

from __future__ import annotations

import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from edge_agent.features import FEATURE_SPEC_VERSION, FeatureExtractor
from edge_agent.protocol.messages import ScoredEvent as WireEvent
from edge_agent.protocol.transaction import Transaction
from edge_agent.simulator import Simulator, SimulatorConfig
from server.anomalies import service as anomalies_service
from server.anomalies.orm import EventKind, Label, ScoredEvent
from server.anomalies.schemas import ChargebackCreate
from server.common.actor import Actor
from server.core.db import session_scope, utcnow
from tests.factories import enroll_device

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


def wire(
    tx: Transaction,
    features: Sequence[float],
    *,
    flagged: bool,
    rng: random.Random,
    model_version: str = "fraud-0",
) -> WireEvent:
    return WireEvent.model_validate(
        {
            "event_id": uuid.uuid4(),
            "transaction": tx,
            "features": [float(v) for v in features],
            "feature_spec_version": FEATURE_SPEC_VERSION,
            "score": rng.uniform(0.6, 1.0) if flagged else rng.uniform(0.0, 0.4),
            "threshold": 0.5,
            "flagged": flagged,
            "model_version": model_version,
            "scored_at": tx.timestamp,
        }
    )


def event_ids(session: Session, transaction_ids: list[str]) -> list[int]:
    return list(
        session.scalars(
            select(ScoredEvent.id).where(ScoredEvent.transaction_id.in_(transaction_ids))
        )
    )


def seed_fleet(*, transactions: int, seed: int = 11, start: datetime | None = None) -> Seeded:
    """Fraud is uploaded as anomalies (a fifth of it missed, as samples); about 4% of
    legitimate traffic is flagged too. Operators confirm half the flagged fraud,
    chargebacks the rest and the missed fraud; two thirds of the false alarms are
    marked false positives and the rest are left unreviewed. Committed."""
    rng = random.Random(seed)
    config = SimulatorConfig(seed=seed, fraud_rate=0.05)
    if start is not None:
        config = config.model_copy(update={"start": start})
    simulator = Simulator(config)
    generated = simulator.generate(transactions)
    truth = {label.transaction_id: label.is_fraud for label in simulator.labels.drain()}
    vectors = FeatureExtractor().transform_many(generated)
    anomalies: list[WireEvent] = []
    samples: list[WireEvent] = []
    confirmed: list[str] = []
    charged_back: list[str] = []
    false_positives: list[str] = []
    unreviewed: list[str] = []
    for tx, vector in zip(generated, vectors, strict=True):
        if truth[tx.transaction_id]:
            missed = rng.random() < 0.2
            (samples if missed else anomalies).append(wire(tx, vector, flagged=not missed, rng=rng))
            (charged_back if missed or rng.random() < 0.5 else confirmed).append(tx.transaction_id)
        elif rng.random() < 0.04:
            anomalies.append(wire(tx, vector, flagged=True, rng=rng))
            (false_positives if rng.random() < 2 / 3 else unreviewed).append(tx.transaction_id)
        else:
            samples.append(wire(tx, vector, flagged=False, rng=rng))
    with session_scope() as session:
        device = enroll_device(session, name=f"pos-retrain-{seed}").device
        for kind, events in ((EventKind.ANOMALY, anomalies), (EventKind.SAMPLE, samples)):
            rows = anomalies_service.event_rows(kind, device.id, None, utcnow(), events)
            assert anomalies_service.store_events(session, rows) == len(events)
    with session_scope() as session:
        for label, wanted in (
            (Label.CONFIRMED_FRAUD, confirmed),
            (Label.FALSE_POSITIVE, false_positives),
        ):
            anomalies_service.label_events(
                session, actor=ACTOR, ids=event_ids(session, wanted), label=label
            )
        anomalies_service.import_chargebacks(
            session,
            actor=ACTOR,
            chargebacks=[ChargebackCreate(transaction_id=t) for t in charged_back],
        )
    return Seeded(
        start=generated[0].timestamp,
        end=generated[-1].timestamp + timedelta(seconds=1),
        fraud=len(confirmed) + len(charged_back),
        false_positives=len(false_positives),
        unlabelled_anomalies=unreviewed,
    )
