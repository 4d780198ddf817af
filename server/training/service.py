"""Training: simulate, split by time, fit, convert, evaluate against baselines, sign.

The one entry point for ``edgeplane train`` and, later, the retraining task. The
pieces live beside it by concern: ``dataset`` (traffic to labelled features),
``model`` (Keras and TFLite), ``baselines`` (rules, gradient boosting),
``evaluation`` (metrics and the threshold), ``report`` and ``keys``.

The decision threshold is the one with the best F1 on the validation slice, computed
on the scores of the very .tflite that ships. The flag decides what a device uploads
and what an operator is asked to review: at about 1% fraud a fixed 1% false-positive
target would flag about as many legitimate payments as fraudulent ones, whereas the
best-F1 point sits near a 0.1% false-positive rate with most fraud still caught.
Recall at 1% FPR is reported beside it as the threshold-free comparison.
"""

from __future__ import annotations

import importlib.metadata
import logging
import math
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.orm import Session

from edge_agent.features import FEATURE_SPEC_VERSION, N_FEATURES
from edge_agent.protocol.artifact import (
    MODEL_FILE,
    ModelManifest,
    TrainingDataRange,
    sha256_hex,
    write_artifact,
)
from edge_agent.simulator import FraudType
from server.common.actor import Actor
from server.core.config import get_settings
from server.core.db import utcnow
from server.core.errors import DomainError
from server.registry import service as registry_service
from server.registry.schemas import ModelMetadata
from server.training import gate
from server.training import model as mlp
from server.training.baselines import (
    RulesBaseline,
    gradient_boosting_scores,
    train_gradient_boosting,
)
from server.training.dataset import (
    Dataset,
    Split,
    TrafficConfig,
    simulate,
    split_by_days,
    split_by_fraction,
)
from server.training.evaluation import Metrics, evaluate, max_f1_threshold
from server.training.exceptions import DatasetError, TrainingError
from server.training.gate import NO_STABLE, GateMargins, GateResult, GateSide
from server.training.model import MlpConfig, Quantization
from server.training.profile import build_profile
from server.training.report import (
    AgreementSummary,
    ArtifactSummary,
    Check,
    DataSummary,
    DriftReport,
    RulesSummary,
    SliceSummary,
    TrainingReport,
    write_report,
)
from server.training.snapshot import SnapshotManifest, build_snapshot, load_snapshot, store_snapshot

logger = logging.getLogger(__name__)

THRESHOLD_POLICY: Final = (
    "each model's threshold maximises F1 on the validation slice (scores at or above it "
    "are flagged)"
)
MAX_GAP_TO_GRADIENT_BOOSTING: Final = 0.02
MIN_LEAD_OVER_RULES: Final = 0.2
MAX_INT8_GAP: Final = 0.01
# The drift experiment: the old model's recall on the new pattern must fall below this
# share of its recall on the fraud it knows, and retraining must add at least this much.
MAX_DRIFT_RECALL_SHARE: Final = 0.5
MIN_DRIFT_RECOVERY: Final = 0.2

Progress = Callable[[str, float, float], None]
"""(stage, completed, total): reported as work advances."""

STAGE_SIMULATE: Final = "simulate traffic"
STAGE_MLP: Final = "train neural network"
STAGE_BASELINES: Final = "baselines"
STAGE_TFLITE: Final = "convert and verify TFLite"
STAGE_DRIFT_SIMULATE: Final = "drift: simulate traffic"
STAGE_DRIFT_BEFORE: Final = "drift: train before drift"
STAGE_DRIFT_AFTER: Final = "drift: retrain after drift"


def _no_progress(stage: str, completed: float, total: float) -> None:
    del stage, completed, total


@dataclass(frozen=True)
class TrainingOptions:
    """What to train on and how; the defaults take about a minute or two on two cores."""

    seed: int = 0
    days: int = 10
    validation_days: int = 1
    test_days: int = 2
    transactions_per_second: float = 0.5
    fraud_rate: float = 0.01
    quantization: Quantization = "float32"
    model_name: str = "fraud"
    version: str | None = None
    mlp: MlpConfig = field(default_factory=MlpConfig)
    drift_experiment: bool = False
    drift_rate: float = 0.005
    drift_test_days: int = 3

    def __post_init__(self) -> None:
        if self.days - self.validation_days - self.test_days < 1:
            raise TrainingError("days must leave at least one day for training")
        if self.quantization not in mlp.QUANTIZATIONS:
            raise TrainingError(f"quantization must be one of {mlp.QUANTIZATIONS}")
        if self.version is not None and not 1 <= len(self.version) <= 64:
            raise TrainingError("a model version has 1 to 64 characters")

    @property
    def train_days(self) -> int:
        return self.days - self.validation_days - self.test_days

    def traffic(self, *, days: float, drift_after_days: float | None = None) -> TrafficConfig:
        return TrafficConfig(
            seed=self.seed,
            days=days,
            transactions_per_second=self.transactions_per_second,
            fraud_rate=self.fraud_rate,
            drift_after_days=drift_after_days,
            drift_rate=self.drift_rate,
        )


@dataclass(frozen=True)
class TrainingResult:
    report: TrainingReport
    manifest: ModelManifest
    model_bytes: dict[Quantization, bytes]
    """Both TFLite variants; ``manifest`` describes the one in the artifact."""
    artifact_dir: Path
    report_paths: tuple[Path, Path]
    split: Split
    """The data the model was trained, thresholded and evaluated on."""


class _Clock:
    """Seconds spent per stage, for the report."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        yield
        self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - started


def _summary(dataset: Dataset) -> SliceSummary:
    return SliceSummary(
        start=dataset.start,
        end=dataset.end,
        rows=len(dataset),
        positives=dataset.positives,
        positives_by_type=dataset.positives_by_type(),
    )


def _score_and_evaluate(
    validation_scores: npt.NDArray[np.float32], test_scores: npt.NDArray[np.float32], split: Split
) -> Metrics:
    """Pick the threshold on validation, then measure on the held-out test slice."""
    validation, test = split.validation, split.test
    threshold = max_f1_threshold(validation.labels, validation_scores, validation.weights)
    return evaluate(
        test.labels, test_scores, test.fraud_types, threshold=threshold, weights=test.weights
    )


def _rules_summary(rules: RulesBaseline) -> RulesSummary:
    def finite(value: float) -> float | None:
        return value if math.isfinite(value) else None

    return RulesSummary(
        amount_eur=finite(rules.amount_eur),
        card_tx_10m=finite(rules.card_tx_10m),
        terminal_small_tx_10m=finite(rules.terminal_small_tx_10m),
    )


def _checks(models: dict[str, Metrics]) -> list[Check]:
    f32 = models["tflite_float32"].pr_auc
    int8 = models["tflite_int8"].pr_auc
    hgb = models["gradient_boosting"].pr_auc
    rules = models["rules"].pr_auc
    return [
        Check(
            name=f"TFLite float32 PR-AUC within {MAX_GAP_TO_GRADIENT_BOOSTING} of "
            "gradient boosting",
            passed=f32 >= hgb - MAX_GAP_TO_GRADIENT_BOOSTING,
            detail=f"{f32:.4f} vs {hgb:.4f} (gap {hgb - f32:+.4f})",
        ),
        Check(
            name=f"TFLite float32 PR-AUC at least {MIN_LEAD_OVER_RULES} above the rules",
            passed=f32 >= rules + MIN_LEAD_OVER_RULES,
            detail=f"{f32:.4f} vs {rules:.4f} (lead {f32 - rules:+.4f})",
        ),
        Check(
            name=f"TFLite int8 PR-AUC within {MAX_INT8_GAP} of float32",
            passed=abs(int8 - f32) <= MAX_INT8_GAP,
            detail=f"{int8:.4f} vs {f32:.4f} (difference {int8 - f32:+.4f})",
        ),
    ]


def _drift_checks(drift: DriftReport) -> list[Check]:
    known = drift.before_on_pre_drift.recall
    return [
        Check(
            name=f"old model's {drift.drift_type} recall after drift below "
            f"{MAX_DRIFT_RECALL_SHARE:.0%} of its recall before",
            passed=drift.recall_before <= MAX_DRIFT_RECALL_SHARE * known,
            detail=f"{drift.recall_before:.4f} vs {known:.4f} on the fraud it was trained on",
        ),
        Check(
            name=f"retrained model recovers at least {MIN_DRIFT_RECOVERY} "
            f"{drift.drift_type} recall",
            passed=drift.recall_after >= drift.recall_before + MIN_DRIFT_RECOVERY,
            detail=f"{drift.recall_after:.4f} vs {drift.recall_before:.4f}",
        ),
    ]


def flat_metrics(metrics: Metrics) -> dict[str, float]:
    """The shipped model's test-slice metrics, as manifests and the registry keep them."""
    flat: dict[str, float] = {
        "pr_auc": metrics.pr_auc,
        "roc_auc": metrics.roc_auc,
        "recall_at_1pct_fpr": metrics.recall_at_1pct_fpr,
        "precision": metrics.precision,
        "recall": metrics.recall,
        "f1": metrics.f1,
        "false_positive_rate": metrics.false_positive_rate,
        "test_rows": float(metrics.rows),
        "test_positives": float(metrics.positives),
    }
    flat |= {f"recall_{kind}": value for kind, value in metrics.recall_by_type.items()}
    return flat


def _manifest(
    options: TrainingOptions,
    *,
    model_bytes: bytes,
    metrics: Metrics,
    split: Split,
    created_at: datetime,
) -> ModelManifest:
    return ModelManifest(
        name=options.model_name,
        version=options.version or created_at.strftime("%Y%m%d.%H%M%S"),
        feature_spec_version=FEATURE_SPEC_VERSION,
        input_shape=[-1, N_FEATURES],
        output_shape=[-1, 1],
        quantization=options.quantization,
        threshold=metrics.threshold,
        tflite_sha256=sha256_hex(model_bytes),
        training_data=TrainingDataRange(
            start=split.train.start,
            end=split.validation.end,
            rows=len(split.train) + len(split.validation),
        ),
        metrics=flat_metrics(metrics),
        created_at=created_at,
    )


def _data_summary(options: TrainingOptions, traffic: TrafficConfig, split: Split) -> DataSummary:
    simulator = traffic.simulator_config()
    return DataSummary(
        seed=options.seed,
        days=options.days,
        transactions_per_second=options.transactions_per_second,
        fraud_rate=options.fraud_rate,
        cards=simulator.n_cards,
        stores=simulator.n_stores,
        train=_summary(split.train),
        validation=_summary(split.validation),
        test=_summary(split.test),
    )


@dataclass(frozen=True)
class Converted:
    models: dict[str, Metrics]
    """``tflite_<quantization>``: test-slice metrics at the validation-chosen threshold."""
    agreement: dict[str, AgreementSummary]
    model_bytes: dict[Quantization, bytes]


def convert_and_evaluate(
    keras_model: Any,
    split: Split,
    quantizations: tuple[Quantization, ...],
    *,
    keras_test: npt.NDArray[np.float32] | None = None,
    on_step: Callable[[int, int], None] | None = None,
) -> Converted:
    """Convert to each TFLite variant, check it agrees with Keras, and evaluate what ships:
    threshold on the validation slice, metrics on the test slice."""
    if keras_test is None:
        keras_test = mlp.keras_scores(keras_model, split.test.features)
    models: dict[str, Metrics] = {}
    agreement: dict[str, AgreementSummary] = {}
    model_bytes: dict[Quantization, bytes] = {}
    for step, quantization in enumerate(quantizations):
        if on_step is not None:
            on_step(step, len(quantizations))
        flatbuffer = mlp.convert(keras_model, quantization)
        test_scores = mlp.tflite_scores(flatbuffer, split.test.features)
        measured = mlp.check_agreement(quantization, keras_test, test_scores)
        agreement[quantization] = AgreementSummary(
            max_abs_diff=measured.max_abs_diff,
            mean_abs_diff=measured.mean_abs_diff,
            p99_abs_diff=measured.p99_abs_diff,
        )
        validation_scores = mlp.tflite_scores(flatbuffer, split.validation.features)
        models[f"tflite_{quantization}"] = _score_and_evaluate(
            validation_scores, test_scores, split
        )
        model_bytes[quantization] = flatbuffer
    if on_step is not None:
        on_step(len(quantizations), len(quantizations))
    return Converted(models=models, agreement=agreement, model_bytes=model_bytes)


def train(
    options: TrainingOptions,
    *,
    output_dir: Path,
    private_key: Ed25519PrivateKey,
    progress: Progress | None = None,
) -> TrainingResult:
    """Train, evaluate and sign; writes the artifact and the report into ``output_dir``."""
    report_progress = progress or _no_progress
    clock = _Clock()
    created_at = datetime.now(UTC).replace(microsecond=0)
    traffic = options.traffic(days=options.days)

    with clock.stage(STAGE_SIMULATE):
        dataset = simulate(
            traffic,
            progress=lambda done, total: report_progress(STAGE_SIMULATE, done, total),
        )
        origin = traffic.simulator_config().start
        split = split_by_days(
            dataset,
            origin=origin,
            train_days=options.train_days,
            validation_days=options.validation_days,
            test_days=options.test_days,
        )

    with clock.stage(STAGE_MLP):
        keras_model = mlp.train_mlp(
            split.train,
            options.mlp,
            on_epoch=lambda done, total: report_progress(STAGE_MLP, done, total),
        )
        keras_test = mlp.keras_scores(keras_model, split.test.features)

    with clock.stage(STAGE_TFLITE):
        converted = convert_and_evaluate(
            keras_model,
            split,
            mlp.QUANTIZATIONS,
            keras_test=keras_test,
            on_step=lambda done, total: report_progress(STAGE_TFLITE, done, total),
        )
    models = dict(converted.models)
    agreement = converted.agreement
    model_bytes = converted.model_bytes

    with clock.stage(STAGE_BASELINES):
        report_progress(STAGE_BASELINES, 0, 2)
        boosting = train_gradient_boosting(split.train, seed=options.seed)
        models["gradient_boosting"] = _score_and_evaluate(
            gradient_boosting_scores(boosting, split.validation.features),
            gradient_boosting_scores(boosting, split.test.features),
            split,
        )
        report_progress(STAGE_BASELINES, 1, 2)
        rules = RulesBaseline.tune(split.validation)
        models["rules"] = _score_and_evaluate(
            rules.score(split.validation.features), rules.score(split.test.features), split
        )
        report_progress(STAGE_BASELINES, 2, 2)

    checks = _checks(models)
    drift = None
    if options.drift_experiment:
        drift = drift_experiment(options, progress=report_progress, clock=clock)
        checks += _drift_checks(drift)

    shipped = models[f"tflite_{options.quantization}"]
    manifest = _manifest(
        options,
        model_bytes=model_bytes[options.quantization],
        metrics=shipped,
        split=split,
        created_at=created_at,
    )
    write_artifact(
        output_dir,
        model_bytes=model_bytes[options.quantization],
        manifest=manifest,
        private_key=private_key,
    )
    report = TrainingReport(
        created_at=created_at,
        feature_spec_version=FEATURE_SPEC_VERSION,
        threshold_policy=THRESHOLD_POLICY,
        data=_data_summary(options, traffic, split),
        models=models,
        agreement=agreement,
        rules=_rules_summary(rules),
        checks=checks,
        artifact=ArtifactSummary(
            directory=str(output_dir),
            name=manifest.name,
            version=manifest.version,
            quantization=manifest.quantization,
            threshold=manifest.threshold,
            tflite_sha256=manifest.tflite_sha256,
            size_bytes=len(model_bytes[options.quantization]),
        ),
        drift=drift,
        timings_seconds={name: round(seconds, 2) for name, seconds in clock.seconds.items()},
    )
    paths = write_report(report, output_dir)
    logger.info(
        "trained %s %s: PR-AUC %.4f, threshold %.4g, %s",
        manifest.name,
        manifest.version,
        shipped.pr_auc,
        manifest.threshold,
        "all quality bars hold" if report.passed else "QUALITY BARS FAILED",
    )
    return TrainingResult(
        report=report,
        manifest=manifest,
        model_bytes=model_bytes,
        artifact_dir=output_dir,
        report_paths=paths,
        split=split,
    )


def _fit_and_threshold(
    split: Split, config: MlpConfig, on_epoch: Callable[[int, int], None]
) -> tuple[Any, float]:
    model = mlp.train_mlp(split.train, config, on_epoch=on_epoch)
    threshold = max_f1_threshold(
        split.validation.labels,
        mlp.keras_scores(model, split.validation.features),
        split.validation.weights,
    )
    return model, threshold


def drift_experiment(
    options: TrainingOptions, *, progress: Progress | None = None, clock: _Clock | None = None
) -> DriftReport:
    """Old model against retrained model on traffic where ``merchant_shift`` starts.

    Three simulated weeks' worth, with the new pattern switched on at the start of the
    second week. The old model trains on the first six days and sets its threshold on
    the seventh; the retrained one does the same with the week after drift (whole
    weeks: a shorter window would let it learn the weekday the pattern began on).
    Both are scored on the days after that.
    """
    report_progress = progress or _no_progress
    clock = clock or _Clock()
    week = 7
    days = 2 * week + options.drift_test_days
    traffic = options.traffic(days=days, drift_after_days=week)
    with clock.stage(STAGE_DRIFT_SIMULATE):
        dataset = simulate(
            traffic,
            progress=lambda done, total: report_progress(STAGE_DRIFT_SIMULATE, done, total),
        )
    origin = traffic.simulator_config().start
    drift_at = origin + timedelta(days=week)
    test_start = drift_at + timedelta(days=week)
    test = dataset.between(test_start, origin + timedelta(days=days))
    last_day = timedelta(days=1)
    before = Split(
        train=dataset.between(origin, drift_at - last_day),
        validation=dataset.between(drift_at - last_day, drift_at),
        test=test,
    )
    after = Split(
        train=dataset.between(drift_at, test_start - last_day),
        validation=dataset.between(test_start - last_day, test_start),
        test=test,
    )
    with clock.stage(STAGE_DRIFT_BEFORE):
        old, old_threshold = _fit_and_threshold(
            before,
            options.mlp,
            lambda done, total: report_progress(STAGE_DRIFT_BEFORE, done, total),
        )
    with clock.stage(STAGE_DRIFT_AFTER):
        new, new_threshold = _fit_and_threshold(
            after,
            options.mlp,
            lambda done, total: report_progress(STAGE_DRIFT_AFTER, done, total),
        )
    kind = FraudType.MERCHANT_SHIFT.value
    report = DriftReport(
        drift_at=drift_at,
        drift_type=kind,
        days=days,
        before_training=_summary(dataset.between(origin, drift_at)),
        after_training=_summary(dataset.between(drift_at, test_start)),
        test=_summary(test),
        before_on_pre_drift=evaluate(
            before.validation.labels,
            mlp.keras_scores(old, before.validation.features),
            before.validation.fraud_types,
            threshold=old_threshold,
        ),
        before_on_test=evaluate(
            test.labels,
            mlp.keras_scores(old, test.features),
            test.fraud_types,
            threshold=old_threshold,
        ),
        after_on_test=evaluate(
            test.labels,
            mlp.keras_scores(new, test.features),
            test.fraud_types,
            threshold=new_threshold,
        ),
    )
    logger.info(
        "drift experiment: %s recall %.3f before retraining, %.3f after",
        kind,
        report.recall_before,
        report.recall_after,
    )
    return report


# Retraining from fleet data


def _code_version() -> str:
    try:
        return f"edgeplane {importlib.metadata.version('edgeplane')}"
    except importlib.metadata.PackageNotFoundError:
        return "edgeplane unknown"


RETRAINING_SOURCE: Final = "retraining"


@dataclass(frozen=True)
class RetrainOptions:
    """How to train on a snapshot: the latest ``test_fraction`` of rows is the held-out
    slice, the ``validation_fraction`` before it sets the threshold. ``gate`` defaults to
    the margins in the training settings."""

    model_name: str = "fraud"
    quantization: Quantization = "float32"
    validation_fraction: float = 0.15
    test_fraction: float = 0.15
    mlp: MlpConfig = field(default_factory=MlpConfig)
    gate: GateMargins | None = None


@dataclass(frozen=True)
class RetrainResult:
    snapshot: SnapshotManifest
    model_id: uuid.UUID | None
    """The registered model; None when the candidate failed the gate."""
    created: bool
    """False when a model trained on this very snapshot was registered before."""
    gate: GateResult | None
    """For a model registered before, the gate its lineage kept (None if it has none)."""
    rollout_error: str | None = None
    """Why an automatic rollout could not start, when one was wanted."""

    @property
    def registered(self) -> bool:
        return self.model_id is not None


def _check_slices(split: Split) -> None:
    for name, part in (("training", split.train), ("validation", split.validation)):
        if part.positives == 0 or part.positives == len(part):
            raise DatasetError(f"the {name} slice needs both fraud and legitimate rows")
    if split.test.positives == 0 or split.test.positives == len(split.test):
        raise DatasetError("the test slice needs both fraud and legitimate rows")


def default_gate_margins() -> GateMargins:
    settings = get_settings().training
    return GateMargins(
        pr_auc=settings.gate_pr_auc_margin,
        recall=settings.gate_recall_margin,
        false_positive_rate=settings.gate_false_positive_rate,
    )


def gate_candidate(
    session: Session,
    *,
    model_name: str,
    candidate_bytes: bytes,
    candidate_threshold: float,
    test: Dataset,
    margins: GateMargins,
) -> GateResult:
    """Score the candidate and the stable model of ``model_name`` on ``test`` and judge."""
    labels, kinds = test.labels, test.fraud_types
    rate = margins.false_positive_rate
    candidate = gate.side(
        labels,
        mlp.tflite_scores(candidate_bytes, test.features),
        kinds,
        threshold=candidate_threshold,
        false_positive_rate=rate,
        weights=test.weights,
    )
    stable = registry_service.stable_model(session, name=model_name)
    current: GateSide | None = None
    no_stable_reason = NO_STABLE
    if stable is not None and stable.feature_spec_version != FEATURE_SPEC_VERSION:
        no_stable_reason = (
            f"stable {stable.label} reads feature spec v{stable.feature_spec_version}, "
            f"the candidate v{FEATURE_SPEC_VERSION}: not comparable"
        )
    elif stable is not None:
        current = gate.side(
            labels,
            mlp.tflite_scores(registry_service.artifact_file(stable, MODEL_FILE), test.features),
            kinds,
            threshold=stable.threshold,
            false_positive_rate=rate,
            weights=test.weights,
        )
    return gate.judge(
        candidate,
        current,
        margins=margins,
        test_rows=len(test),
        test_positives=test.positives,
        stable_model_id=str(stable.id) if stable else None,
        stable_label=stable.label if stable else None,
        no_stable_reason=no_stable_reason,
    )


def _start_rollout(session: Session, *, actor: Actor, model_id: uuid.UUID) -> str | None:
    """Start the default rollout of a new candidate when the settings ask for it; returns
    why it could not start, if it could not (the candidate stays registered)."""
    if not get_settings().rollouts.auto_start:
        return None
    from server.rollouts import service as rollouts_service

    try:
        with session.begin_nested():
            rollouts_service.start_automatic_rollout(session, actor=actor, model_id=model_id)
    except DomainError as exc:
        logger.warning("no automatic rollout of %s: %s", model_id, exc.detail)
        return exc.detail
    return None


@dataclass(frozen=True)
class TrainedCandidate:
    """A model trained and evaluated on a stored snapshot, not yet gated or registered."""

    snapshot: SnapshotManifest
    split: Split
    metrics: Metrics
    model_bytes: bytes
    started: float
    """``time.monotonic()`` when retraining began, for the log."""


def snapshot_for_retraining(
    session: Session, *, start: datetime, end: datetime, options: RetrainOptions
) -> SnapshotManifest | RetrainResult:
    """Build and store the snapshot of ``[start, end)``; or, when a model was already
    trained on that very snapshot, the result that names it."""
    settle = timedelta(hours=get_settings().training.label_settle_hours)
    built = build_snapshot(session, start=start, end=end, settled_before=utcnow() - settle)
    existing = registry_service.model_for_snapshot(
        session, name=options.model_name, snapshot=built.manifest.key
    )
    if existing is not None:
        logger.info("%s was already trained on %s", existing.label, built.manifest.key)
        stored = existing.lineage.get("gate")
        return RetrainResult(
            snapshot=built.manifest,
            model_id=existing.id,
            created=False,
            gate=GateResult.model_validate(stored) if stored else None,
        )
    return store_snapshot(built)


def train_on_snapshot(
    snapshot: SnapshotManifest, options: RetrainOptions, *, started: float | None = None
) -> TrainedCandidate:
    """Split the stored snapshot by time, train, convert and evaluate. No database: the
    minutes this takes hold no transaction open."""
    # Train on what was stored, so the model's lineage points at exactly its data.
    dataset = load_snapshot(snapshot.id).dataset
    split = split_by_fraction(
        dataset, validation=options.validation_fraction, test=options.test_fraction
    )
    _check_slices(split)
    keras_model = mlp.train_mlp(split.train, options.mlp)
    converted = convert_and_evaluate(keras_model, split, (options.quantization,))
    return TrainedCandidate(
        snapshot=snapshot,
        split=split,
        metrics=converted.models[f"tflite_{options.quantization}"],
        model_bytes=converted.model_bytes[options.quantization],
        started=time.monotonic() if started is None else started,
    )


def register_candidate(
    session: Session, *, actor: Actor, trained: TrainedCandidate, options: RetrainOptions
) -> RetrainResult:
    """Gate the candidate against the stable model on its held-out slice; register it
    (with its gate and feature profile in the lineage) only if it passes."""
    manifest, split, metrics = trained.snapshot, trained.split, trained.metrics
    verdict = gate_candidate(
        session,
        model_name=options.model_name,
        candidate_bytes=trained.model_bytes,
        candidate_threshold=metrics.threshold,
        test=split.test,
        margins=options.gate or default_gate_margins(),
    )
    if not verdict.passed:
        logger.info("candidate trained on %s rejected: %s", manifest.key, verdict.reason)
        return RetrainResult(snapshot=manifest, model_id=None, created=False, gate=verdict)
    parent = registry_service.stable_model(session, name=options.model_name)
    model = registry_service.register_model(
        session,
        actor=actor,
        model_bytes=trained.model_bytes,
        metadata=ModelMetadata(
            name=options.model_name,
            feature_spec_version=manifest.feature_spec_version,
            threshold=metrics.threshold,
            quantization=options.quantization,
            training_start=split.train.start,
            training_end=split.validation.end,
            training_rows=len(split.train) + len(split.validation),
            metrics=flat_metrics(metrics),
            parent_version_id=parent.id if parent else None,
            dataset_snapshot=manifest.key,
            code_version=_code_version(),
        ),
        source=RETRAINING_SOURCE,
    )
    training_rows = np.concatenate([split.train.features, split.validation.features])
    model.lineage = {
        **model.lineage,
        "gate": verdict.model_dump(mode="json"),
        "feature_profile": build_profile(
            training_rows, bins=get_settings().training.drift_profile_bins
        ).model_dump(mode="json"),
    }
    session.flush()
    logger.info(
        "retrained %s on %s in %.1f s: PR-AUC %.4f on %d held-out rows; gate: %s",
        model.label,
        manifest.key,
        time.monotonic() - trained.started,
        metrics.pr_auc,
        metrics.rows,
        verdict.reason,
    )
    rollout_error = _start_rollout(session, actor=actor, model_id=model.id)
    return RetrainResult(
        snapshot=manifest,
        model_id=model.id,
        created=True,
        gate=verdict,
        rollout_error=rollout_error,
    )


def retrain(
    session: Session,
    *,
    actor: Actor,
    start: datetime,
    end: datetime,
    options: RetrainOptions | None = None,
) -> RetrainResult:
    """Snapshot the fleet's labelled events in ``[start, end)``, train on the snapshot,
    convert, evaluate on its time-later slice, and register the result as a candidate
    if it passes the gate against the stable model on that same slice.

    Safe to run twice: the snapshot id is the range plus a hash of its content, and a
    model whose lineage names that snapshot is returned instead of training again.
    All in the caller's transaction; ``training.run`` uses the three steps with a
    transaction each instead, so that none is open while the model trains.
    """
    options = options or RetrainOptions()
    started = time.monotonic()
    snapshot = snapshot_for_retraining(session, start=start, end=end, options=options)
    if isinstance(snapshot, RetrainResult):
        return snapshot
    trained = train_on_snapshot(snapshot, options, started=started)
    return register_candidate(session, actor=actor, trained=trained, options=options)
