"""Drift checks of the stable model: has the fleet moved away from what it was trained on?

Four checks, each with a minimum amount of data below which it gives no verdict:

* feature shift: PSI per feature between the fleet's recent samples (random draws of
  the traffic devices scored) and the model's feature profile, kept in its lineage by
  retraining. Time of day and day of week are left out: an hour's window always differs
  from days of training data there. A model registered from elsewhere has no profile;
  it is compared with the fleet's samples of the first window after it went into
  service (the first samples it scored), and the evidence says so;
* flag rate: the share of transactions the stable model flagged in the recent window
  (device telemetry) against the hours before it, up or down by more than a factor;
* precision: confirmed fraud among the stable model's labelled anomalies of the last
  days, against the precision it had on its test slice. It fires when the 95% interval
  of that share lies wholly below the limit, so a few dozen labels that happen to be
  false alarms do not retrain the model. The newest anomalies are left out until their
  labels have settled: false alarms are reviewed within minutes, fraud is confirmed by
  chargebacks days later;
* recall: fraud the model let through shows up as chargebacks on its samples. Samples
  are a random share of the unflagged traffic, so each charged-back sample stands for
  1/share missed frauds; flagged fraud against flagged plus missed estimates recall,
  compared with the model's test recall. A new pattern that looks ordinary moves no
  feature distribution and no flag rate; this is the check that sees it.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any, Final

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from edge_agent.features import FEATURE_SPEC_VERSION, N_FEATURES
from server.anomalies import service as anomalies_service
from server.anomalies.orm import EventKind, Label, ScoredEvent
from server.common.stats import rate_interval
from server.core.config import TrainingSettings, get_settings
from server.core.db import utcnow
from server.ingest import service as ingest_service
from server.registry import service as registry_service
from server.registry.orm import ModelVersion
from server.training.profile import FeatureProfile, build_profile, feature_psi

logger = logging.getLogger(__name__)

FEATURE_SHIFT: Final = "feature_shift"
FLAG_RATE: Final = "flag_rate"
PRECISION: Final = "precision"
RECALL: Final = "recall"
TOP_FEATURES: Final = 5
# When, not what: a window of an hour always differs from days of training data here.
TIME_FEATURES: Final = frozenset({"hour_sin", "hour_cos", "dow_sin", "dow_cos"})


class CheckResult(BaseModel):
    """One check: whether it fired, in words, and its numbers."""

    model_config = ConfigDict(frozen=True)

    check: str
    fired: bool
    evaluated: bool
    """False when there was too little data for a verdict."""
    detail: str
    numbers: dict[str, Any]


class DriftCheck(BaseModel):
    model_config = ConfigDict(frozen=True)

    model_id: str
    model_label: str
    checked_at: datetime
    checks: list[CheckResult]

    @property
    def fired(self) -> list[CheckResult]:
        return [check for check in self.checks if check.fired]

    def evidence(self) -> dict[str, Any]:
        """What a drift-triggered run records: every check, fired or not."""
        return {
            "model_id": self.model_id,
            "model_label": self.model_label,
            "checked_at": self.checked_at.isoformat(),
            "fired": [check.check for check in self.fired],
            "checks": [check.model_dump(mode="json") for check in self.checks],
        }


def _features(blobs: list[bytes]) -> npt.NDArray[np.float32]:
    rows = [blob for blob in blobs if len(blob) == 4 * N_FEATURES]
    if not rows:
        return np.zeros((0, N_FEATURES), dtype=np.float32)
    return np.frombuffer(b"".join(rows), dtype="<f4").astype(np.float32).reshape(-1, N_FEATURES)


def _samples(
    session: Session,
    *,
    since: datetime,
    until: datetime,
    limit: int,
    model_version: str | None = None,
    latest: bool = True,
) -> npt.NDArray[np.float32]:
    """Feature vectors of fleet samples with a transaction time in ``[since, until)``."""
    statement = select(ScoredEvent.features).where(
        ScoredEvent.kind == EventKind.SAMPLE,
        ScoredEvent.feature_spec_version == FEATURE_SPEC_VERSION,
        ScoredEvent.transaction_at >= since,
        ScoredEvent.transaction_at < until,
    )
    if model_version is not None:
        statement = statement.where(ScoredEvent.model_version == model_version)
    order = ScoredEvent.transaction_at.desc() if latest else ScoredEvent.transaction_at.asc()
    return _features(list(session.scalars(statement.order_by(order).limit(limit))))


def _reference_profile(
    session: Session, model: ModelVersion, settings: TrainingSettings
) -> tuple[FeatureProfile | None, str, int]:
    """The model's training profile, else one of its first window of fleet samples."""
    stored = model.lineage.get("feature_profile")
    if stored:
        try:
            profile = FeatureProfile.model_validate(stored)
            return profile, "the model's training data", profile.rows
        except ValidationError:
            logger.warning("%s has an unreadable feature profile; using fleet samples", model.label)
    first = session.scalar(
        select(func.min(ScoredEvent.transaction_at)).where(
            ScoredEvent.kind == EventKind.SAMPLE, ScoredEvent.model_version == model.label
        )
    )
    source = (
        f"fleet samples of the first {settings.drift_window_minutes:g} minutes after "
        f"{model.label} went into service (it has no training profile)"
    )
    if first is None:
        return None, source, 0
    reference = _samples(
        session,
        since=first,
        until=first + timedelta(minutes=settings.drift_window_minutes),
        limit=settings.drift_max_samples,
        model_version=model.label,
        latest=False,
    )
    if len(reference) < settings.drift_min_samples:
        return None, source, len(reference)
    return build_profile(reference, bins=settings.drift_profile_bins), source, len(reference)


def feature_shift(
    session: Session, model: ModelVersion, *, now: datetime, settings: TrainingSettings
) -> CheckResult:
    window = timedelta(minutes=settings.drift_window_minutes)
    recent = _samples(session, since=now - window, until=now, limit=settings.drift_max_samples)
    profile, source, reference_rows = _reference_profile(session, model, settings)
    numbers: dict[str, Any] = {
        "reference": source,
        "reference_rows": reference_rows,
        "recent_samples": len(recent),
        "min_samples": settings.drift_min_samples,
        "threshold": settings.drift_psi_threshold,
        "excluded_features": sorted(TIME_FEATURES),
    }
    if profile is None:
        detail = f"no verdict: too few reference samples ({reference_rows}) from {source}"
        return CheckResult(
            check=FEATURE_SHIFT, fired=False, evaluated=False, detail=detail, numbers=numbers
        )
    if len(recent) < settings.drift_min_samples:
        detail = (
            f"no verdict: {len(recent)} recent samples, fewer than {settings.drift_min_samples}"
        )
        return CheckResult(
            check=FEATURE_SHIFT, fired=False, evaluated=False, detail=detail, numbers=numbers
        )
    values = {
        name: value
        for name, value in feature_psi(profile, recent).items()
        if name not in TIME_FEATURES
    }
    ranked = sorted(values.items(), key=lambda item: item[1], reverse=True)
    shifted = [name for name, value in ranked if value > settings.drift_psi_threshold]
    numbers |= {
        "top_features": [
            {"feature": name, "psi": round(value, 4)} for name, value in ranked[:TOP_FEATURES]
        ],
        "shifted_features": shifted,
    }
    if shifted:
        detail = "PSI above {:g} against {}: {}".format(
            settings.drift_psi_threshold,
            source,
            ", ".join(f"{name} {values[name]:.3f}" for name in shifted),
        )
    else:
        name, value = ranked[0]
        detail = f"largest PSI {value:.3f} ({name}), not above {settings.drift_psi_threshold:g}"
    return CheckResult(
        check=FEATURE_SHIFT, fired=bool(shifted), evaluated=True, detail=detail, numbers=numbers
    )


def _totals(session: Session, label: str, *, since: datetime, until: datetime) -> tuple[int, int]:
    for totals in ingest_service.model_totals(session, since=since, until=until):
        if totals.model_version == label:
            return totals.scored, totals.flagged
    return 0, 0


def flag_rate(
    session: Session, model: ModelVersion, *, now: datetime, settings: TrainingSettings
) -> CheckResult:
    window_start = now - timedelta(minutes=settings.drift_window_minutes)
    reference_start = window_start - timedelta(hours=settings.flag_rate_reference_hours)
    scored, flagged = _totals(session, model.label, since=window_start, until=now)
    ref_scored, ref_flagged = _totals(
        session, model.label, since=reference_start, until=window_start
    )
    numbers: dict[str, Any] = {
        "recent_scored": scored,
        "recent_flagged": flagged,
        "reference_scored": ref_scored,
        "reference_flagged": ref_flagged,
        "reference_hours": settings.flag_rate_reference_hours,
        "min_scored": settings.flag_rate_min_scored,
        "max_ratio": settings.flag_rate_max_ratio,
    }
    if min(scored, ref_scored) < settings.flag_rate_min_scored:
        detail = (
            f"no verdict: {scored} recent and {ref_scored} reference transactions scored, "
            f"fewer than {settings.flag_rate_min_scored}"
        )
        return CheckResult(
            check=FLAG_RATE, fired=False, evaluated=False, detail=detail, numbers=numbers
        )
    recent_rate, reference_rate = flagged / scored, ref_flagged / ref_scored
    # A floor of one flag in the reference window keeps the ratio finite.
    ratio = recent_rate / max(reference_rate, 1 / ref_scored)
    fired = ratio > settings.flag_rate_max_ratio or ratio < 1 / settings.flag_rate_max_ratio
    numbers |= {"recent_rate": recent_rate, "reference_rate": reference_rate, "ratio": ratio}
    detail = (
        f"flag rate {recent_rate:.4%} vs {reference_rate:.4%} in the "
        f"{settings.flag_rate_reference_hours:g} h before (x{ratio:.2f}; "
        f"{'beyond' if fired else 'within'} x{settings.flag_rate_max_ratio:g} either way)"
    )
    return CheckResult(check=FLAG_RATE, fired=fired, evaluated=True, detail=detail, numbers=numbers)


def precision(
    session: Session, model: ModelVersion, *, now: datetime, settings: TrainingSettings
) -> CheckResult:
    since = now - timedelta(hours=settings.precision_window_hours)
    settled = now - timedelta(hours=settings.label_settle_hours)
    rows = session.execute(
        select(ScoredEvent.label, func.count())
        .where(
            ScoredEvent.kind == EventKind.ANOMALY,
            ScoredEvent.model_version == model.label,
            ScoredEvent.transaction_at >= since,
            ScoredEvent.transaction_at < settled,
            ScoredEvent.label.is_not(None),
        )
        .group_by(ScoredEvent.label)
    )
    counts = {label: int(count) for label, count in rows}
    confirmed = int(counts.get(Label.CONFIRMED_FRAUD, 0))
    false_positives = int(counts.get(Label.FALSE_POSITIVE, 0))
    labelled = confirmed + false_positives
    reference = model.metrics.get("precision")
    numbers: dict[str, Any] = {
        "confirmed_fraud": confirmed,
        "false_positives": false_positives,
        "window_hours": settings.precision_window_hours,
        "settle_hours": settings.label_settle_hours,
        "test_precision": reference,
        "min_labelled": settings.precision_min_labelled,
        "max_drop": settings.precision_max_drop,
    }
    if reference is None or labelled < settings.precision_min_labelled:
        detail = (
            f"no verdict: {labelled} labelled anomalies (at least "
            f"{settings.precision_min_labelled} needed)"
            if reference is not None
            else "no verdict: the model has no test precision"
        )
        return CheckResult(
            check=PRECISION, fired=False, evaluated=False, detail=detail, numbers=numbers
        )
    recent = confirmed / labelled
    low, high = rate_interval(confirmed, labelled)
    limit = reference - settings.precision_max_drop
    fired = high < limit
    numbers |= {"recent_precision": recent, "interval": [low, high], "limit": limit}
    detail = (
        f"precision {recent:.3f} (95% interval {low:.3f} to {high:.3f}) on {labelled} "
        f"labelled anomalies vs {reference:.3f} on the test slice: "
        f"{'wholly' if fired else 'not wholly'} below {limit:.3f}"
    )
    return CheckResult(check=PRECISION, fired=fired, evaluated=True, detail=detail, numbers=numbers)


def recall(
    session: Session, model: ModelVersion, *, now: datetime, settings: TrainingSettings
) -> CheckResult:
    since = now - timedelta(hours=settings.precision_window_hours)

    def received(kind: EventKind, *, fraud: bool) -> int:
        return anomalies_service.received_count(
            session, kind=kind, since=since, until=now, model_version=model.label, fraud=fraud
        )

    caught = received(EventKind.ANOMALY, fraud=True)
    missed_sampled = received(EventKind.SAMPLE, fraud=True)
    samples = received(EventKind.SAMPLE, fraud=False)
    scored, flagged = _totals(session, model.label, since=since, until=now)
    reference = model.metrics.get("recall")
    numbers: dict[str, Any] = {
        "caught_fraud": caught,
        "charged_back_samples": missed_sampled,
        "samples": samples,
        "unflagged_scored": scored - flagged,
        "window_hours": settings.precision_window_hours,
        "test_recall": reference,
        "min_fraud": settings.recall_min_fraud,
        "max_drop": settings.recall_max_drop,
    }
    if reference is None or caught + missed_sampled < settings.recall_min_fraud or not samples:
        detail = (
            f"no verdict: {caught + missed_sampled} labelled frauds (at least "
            f"{settings.recall_min_fraud} needed) and {samples} samples"
            if reference is not None
            else "no verdict: the model has no test recall"
        )
        return CheckResult(
            check=RECALL, fired=False, evaluated=False, detail=detail, numbers=numbers
        )
    sample_share = min(1.0, samples / max(scored - flagged, samples))
    missed = missed_sampled / sample_share
    estimate = caught / (caught + missed) if caught + missed else 1.0
    fired = estimate < reference - settings.recall_max_drop
    numbers |= {"sample_share": sample_share, "estimated_missed": missed, "recent_recall": estimate}
    detail = (
        f"recall about {estimate:.3f} ({caught} frauds flagged, about {missed:.0f} let through: "
        f"{missed_sampled} charged-back samples at a {sample_share:.1%} sample share) vs "
        f"{reference:.3f} on the test slice ({'more' if fired else 'no more'} than "
        f"{settings.recall_max_drop:g} below)"
    )
    return CheckResult(check=RECALL, fired=fired, evaluated=True, detail=detail, numbers=numbers)


def check_drift(
    session: Session, *, model_name: str, now: datetime | None = None
) -> DriftCheck | None:
    """Run every check against the stable model of ``model_name``; None without one."""
    model = registry_service.stable_model(session, name=model_name)
    if model is None:
        return None
    now = now or utcnow()
    settings = get_settings().training
    checks = [
        check(session, model, now=now, settings=settings)
        for check in (feature_shift, flag_rate, precision, recall)
    ]
    for result in checks:
        logger.info("drift check of %s, %s: %s", model.label, result.check, result.detail)
    return DriftCheck(
        model_id=str(model.id), model_label=model.label, checked_at=now, checks=checks
    )
