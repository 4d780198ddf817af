"""``edgeplane train``: starts without TensorFlow, trains end to end, signs what it writes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from edge_agent.features import FEATURE_SPEC_VERSION
from edge_agent.protocol.artifact import load_public_key, read_artifact
from server.cli import app
from server.training.keys import PRIVATE_KEY_FILE, PUBLIC_KEY_FILE, generate_signing_key
from server.training.report import REPORT_JSON, TrainingReport


def test_the_command_line_starts_without_loading_tensorflow() -> None:
    probe = (
        "import sys, server.cli; "
        "heavy = [m for m in ('tensorflow', 'keras', 'sklearn', 'server.training.service') "
        "if m in sys.modules]; "
        "print(heavy)"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "[]"


def test_train_needs_a_signing_key(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["train", "--out", str(tmp_path)])

    assert result.exit_code == 2
    assert "edgeplane train keygen" in result.output
    assert not any(tmp_path.iterdir())


def test_train_writes_a_signed_int8_artifact_and_a_report(tmp_path: Path) -> None:
    generate_signing_key(tmp_path / "keys")
    out = tmp_path / "model"
    result = CliRunner().invoke(
        app,
        [
            "train",
            "--signing-key",
            str(tmp_path / "keys" / PRIVATE_KEY_FILE),
            "--out",
            str(out),
            "--seed",
            "3",
            "--days",
            "4",
            "--test-days",
            "2",
            "--rate",
            "0.1",
            "--epochs",
            "2",
            "--quantization",
            "int8",
            "--version",
            "cli-1",
        ],
    )

    report = TrainingReport.model_validate_json((out / REPORT_JSON).read_text())
    assert result.exit_code == (0 if report.passed else 1), result.output
    assert "held-out test slice" in result.output
    assert "TFLite int8" in result.output
    manifest, _ = read_artifact(
        out,
        public_keys=[load_public_key((tmp_path / "keys" / PUBLIC_KEY_FILE).read_text())],
        supported_feature_spec_versions=frozenset({FEATURE_SPEC_VERSION}),
    )
    assert manifest.quantization == "int8"
    assert manifest.version == "cli-1"
    assert manifest.threshold == report.models["tflite_int8"].threshold
    assert report.drift is None
