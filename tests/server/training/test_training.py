"""Quality evidence on a fixed seed: bars against the baselines, drift, threshold, artifact."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge_agent.features import FEATURE_SPEC_VERSION, N_FEATURES
from edge_agent.protocol.artifact import (
    MANIFEST_FILE,
    MODEL_FILE,
    SIGNATURE_FILE,
    ArtifactError,
    read_artifact,
)
from edge_agent.simulator import BASELINE_FRAUD_TYPES, FraudType
from server.training.evaluation import max_f1_threshold
from server.training.model import tflite_scores
from server.training.report import REPORT_JSON, REPORT_MARKDOWN, TrainingReport
from server.training.service import TrainingResult

# The first test here trains (about a minute on two idle cores); leave room on a busy machine.
pytestmark = pytest.mark.timeout(900)


def test_split_is_time_ordered_with_the_test_slice_last(trained: TrainingResult) -> None:
    split = trained.split
    assert split.train.timestamps[-1] < split.validation.timestamps[0]
    assert split.validation.timestamps[-1] < split.test.timestamps[0]
    data = trained.report.data
    assert data.train.rows > 100_000
    assert data.test.positives > 300
    assert set(data.test.positives_by_type) == {kind.value for kind in BASELINE_FRAUD_TYPES}


def test_tflite_float32_is_within_002_pr_auc_of_gradient_boosting(
    trained: TrainingResult,
) -> None:
    models = trained.report.models
    assert models["tflite_float32"].pr_auc >= models["gradient_boosting"].pr_auc - 0.02


def test_tflite_is_well_above_the_rules(trained: TrainingResult) -> None:
    models = trained.report.models
    assert models["tflite_float32"].pr_auc >= models["rules"].pr_auc + 0.2
    assert models["tflite_float32"].recall_at_1pct_fpr > models["rules"].recall_at_1pct_fpr


def test_int8_is_within_001_pr_auc_of_float32(trained: TrainingResult) -> None:
    models = trained.report.models
    assert abs(models["tflite_int8"].pr_auc - models["tflite_float32"].pr_auc) <= 0.01


def test_every_fraud_type_is_mostly_caught(trained: TrainingResult) -> None:
    recall = trained.report.models["tflite_float32"].recall_by_type
    assert set(recall) == {kind.value for kind in BASELINE_FRAUD_TYPES}
    assert min(recall.values()) >= 0.6


def test_tflite_files_match_keras(trained: TrainingResult) -> None:
    agreement = trained.report.agreement
    assert agreement["float32"].max_abs_diff <= 1e-4
    assert agreement["int8"].mean_abs_diff <= 2e-3
    assert agreement["int8"].p99_abs_diff <= 2e-2


def test_both_variants_score_alike_in_the_device_runtime(trained: TrainingResult) -> None:
    rows = trained.split.test.features[:5000]
    float32 = tflite_scores(trained.model_bytes["float32"], rows)
    int8 = tflite_scores(trained.model_bytes["int8"], rows)
    assert float32.shape == int8.shape == (len(rows),)
    assert np.all((float32 >= 0) & (float32 <= 1))
    assert float(np.mean(np.abs(float32 - int8))) < 2e-3
    assert len(trained.model_bytes["int8"]) < len(trained.model_bytes["float32"]) / 2


def test_drift_drops_recall_and_retraining_recovers_it(trained: TrainingResult) -> None:
    drift = trained.report.drift
    assert drift is not None
    assert drift.drift_type == FraudType.MERCHANT_SHIFT.value
    assert drift.before_on_test.positives_by_type[drift.drift_type] > 200
    assert drift.recall_before <= 0.5 * drift.before_on_pre_drift.recall
    assert drift.recall_after >= drift.recall_before + 0.2
    assert drift.after_on_test.pr_auc > drift.before_on_test.pr_auc


def test_every_quality_bar_holds(trained: TrainingResult) -> None:
    failed = [check for check in trained.report.checks if not check.passed]
    assert not failed
    assert len(trained.report.checks) == 5


def test_threshold_is_chosen_on_validation_and_stored_in_the_manifest(
    trained: TrainingResult,
) -> None:
    manifest = trained.manifest
    model_bytes = (trained.artifact_dir / MODEL_FILE).read_bytes()
    validation = trained.split.validation
    expected = max_f1_threshold(validation.labels, tflite_scores(model_bytes, validation.features))
    assert manifest.threshold == pytest.approx(expected)
    assert 0.0 < manifest.threshold < 1.0

    test = trained.split.test
    flagged = tflite_scores(model_bytes, test.features) >= manifest.threshold
    metrics = trained.report.models["tflite_float32"]
    assert metrics.threshold == manifest.threshold
    assert float(np.mean(flagged[test.labels == 1])) == pytest.approx(metrics.recall)
    assert manifest.metrics["recall"] == pytest.approx(metrics.recall)


def test_artifact_verifies(trained: TrainingResult, signing_key: Ed25519PrivateKey) -> None:
    manifest, model_bytes = read_artifact(
        trained.artifact_dir,
        public_keys=[signing_key.public_key()],
        supported_feature_spec_versions=frozenset({FEATURE_SPEC_VERSION}),
    )
    assert manifest == trained.manifest
    assert model_bytes == trained.model_bytes["float32"]
    assert manifest.name == "fraud"
    assert manifest.version == "test-1"
    assert manifest.quantization == "float32"
    assert manifest.input_shape == [-1, N_FEATURES]
    assert manifest.output_shape == [-1, 1]
    assert manifest.feature_spec_version == FEATURE_SPEC_VERSION
    split = trained.split
    assert manifest.training_data.start == split.train.start
    assert manifest.training_data.end == split.validation.end
    assert manifest.training_data.end < split.test.start
    assert manifest.training_data.rows == len(split.train) + len(split.validation)
    assert manifest.metrics["pr_auc"] == trained.report.models["tflite_float32"].pr_auc
    assert {f"recall_{kind.value}" for kind in BASELINE_FRAUD_TYPES} <= set(manifest.metrics)


def _copy(trained: TrainingResult, tmp_path: Path) -> Path:
    directory = tmp_path / "artifact"
    directory.mkdir()
    for name in (MODEL_FILE, MANIFEST_FILE, SIGNATURE_FILE):
        shutil.copy(trained.artifact_dir / name, directory / name)
    return directory


def _read(directory: Path, key: Ed25519PrivateKey) -> None:
    read_artifact(
        directory,
        public_keys=[key.public_key()],
        supported_feature_spec_versions=frozenset({FEATURE_SPEC_VERSION}),
    )


def test_tampered_model_is_refused(
    trained: TrainingResult, signing_key: Ed25519PrivateKey, tmp_path: Path
) -> None:
    directory = _copy(trained, tmp_path)
    model = bytearray((directory / MODEL_FILE).read_bytes())
    model[len(model) // 2] ^= 0x01
    (directory / MODEL_FILE).write_bytes(bytes(model))
    with pytest.raises(ArtifactError, match="sha256"):
        _read(directory, signing_key)


def test_tampered_manifest_is_refused(
    trained: TrainingResult, signing_key: Ed25519PrivateKey, tmp_path: Path
) -> None:
    directory = _copy(trained, tmp_path)
    manifest = json.loads((directory / MANIFEST_FILE).read_text())
    manifest["threshold"] = 0.99
    (directory / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n")
    with pytest.raises(ArtifactError, match="signature"):
        _read(directory, signing_key)


def test_artifact_from_another_key_is_refused(trained: TrainingResult) -> None:
    with pytest.raises(ArtifactError, match="signature"):
        _read(trained.artifact_dir, Ed25519PrivateKey.generate())


def test_report_is_written_as_json_and_markdown(trained: TrainingResult) -> None:
    json_path, markdown_path = trained.report_paths
    assert json_path.name == REPORT_JSON
    assert markdown_path.name == REPORT_MARKDOWN
    assert TrainingReport.model_validate_json(json_path.read_text()) == trained.report
    markdown = markdown_path.read_text()
    for text in (
        "| TFLite float32 |",
        "| TFLite int8 |",
        "| HistGradientBoosting |",
        "| Rules |",
        "recall @ 1% FPR",
        "## Drift experiment",
        "merchant_shift recall",
        "## Quality bars",
    ):
        assert text in markdown
    assert "❌" not in markdown
