"""``edgeplane train``: train, evaluate and sign a fraud model; ``edgeplane train keygen``.

Importing this module is cheap: TensorFlow and scikit-learn load only once a command
runs, so ``edgeplane`` starts fast and works without the training extra.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from server.training.report import TrainingReport

logger = logging.getLogger(__name__)

train_app = typer.Typer(
    help="Train the fraud model on simulated traffic, evaluate it and write a signed artifact.",
    add_completion=False,
)
console = Console(stderr=True)


class QuantizationChoice(StrEnum):
    FLOAT32 = "float32"
    INT8 = "int8"


_TRAINING_EXTRA_HINT = "install the training extra: pip install -e '.[training]'"


def _load_tensorflow_quietly() -> None:
    """Load TensorFlow with its native start-up notes kept off the progress display.

    They go straight to file descriptor 2 before its logging can be configured; they
    are shown after all if the import fails.
    """
    from server.training.model import load_keras

    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            load_keras()
        except BaseException:
            os.dup2(saved, 2)
            captured.seek(0)
            sys.stderr.write(captured.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def _fail(message: str) -> typer.Exit:
    console.print(f"[red]{message}[/red]")
    return typer.Exit(2)


@train_app.command("keygen")
def keygen(
    out: Annotated[Path, typer.Option("--out", help="Folder for the key pair.")] = Path("var/keys"),
) -> None:
    """Create an Ed25519 signing key (mode 0600) and its public key for agents to trust."""
    from server.training.exceptions import SigningKeyError
    from server.training.keys import generate_signing_key

    try:
        private_path, public_path = generate_signing_key(out)
    except SigningKeyError as exc:
        raise _fail(str(exc)) from exc
    console.print(f"private key: {private_path} (keep it secret)")
    console.print(f"public key:  {public_path} (give it to the agents)")


@train_app.callback(invoke_without_command=True)
def train(
    ctx: typer.Context,
    signing_key: Annotated[
        Path | None,
        typer.Option(
            help="Ed25519 private key (PEM) that signs the manifest; "
            "create one with `edgeplane train keygen`.",
        ),
    ] = None,
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Folder for the artifact and the report.")
    ] = Path("var/training"),
    seed: Annotated[int, typer.Option(min=0, help="Same seed, same data and model.")] = 0,
    days: Annotated[
        int, typer.Option(min=3, help="Simulated days: training, then validation, then test.")
    ] = 10,
    validation_days: Annotated[int, typer.Option(min=1)] = 1,
    test_days: Annotated[int, typer.Option(min=1, help="Held-out days at the end.")] = 2,
    rate: Annotated[
        float, typer.Option(min=0.01, help="Average simulated transactions per second.")
    ] = 0.5,
    fraud_rate: Annotated[float, typer.Option(min=0.001, max=0.2)] = 0.01,
    quantization: Annotated[
        QuantizationChoice,
        typer.Option(help="Variant in the artifact (both are evaluated)."),
    ] = QuantizationChoice.FLOAT32,
    epochs: Annotated[int, typer.Option(min=1)] = 12,
    name: Annotated[str, typer.Option(help="Model name in the manifest.")] = "fraud",
    version: Annotated[
        str | None, typer.Option(help="Model version (default: the UTC time).")
    ] = None,
    drift_experiment: Annotated[
        bool,
        typer.Option(
            "--drift-experiment",
            help="Also show that a model trained before a new fraud pattern misses it and "
            "a retrained one recovers it (about twice the time).",
        ),
    ] = False,
) -> None:
    """Train, evaluate against baselines, and write model.tflite, manifest.json, manifest.sig."""
    if ctx.invoked_subcommand is not None:
        return
    if signing_key is None:
        raise _fail("--signing-key is required; create one with `edgeplane train keygen`")
    try:
        from server.training import service
        from server.training.exceptions import TrainingError
        from server.training.keys import load_signing_key
        from server.training.model import MlpConfig

        _load_tensorflow_quietly()
    except ImportError as exc:
        raise _fail(f"{exc}; {_TRAINING_EXTRA_HINT}") from exc

    from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

    try:
        private_key = load_signing_key(signing_key)
        options = service.TrainingOptions(
            seed=seed,
            days=days,
            validation_days=validation_days,
            test_days=test_days,
            transactions_per_second=rate,
            fraud_rate=fraud_rate,
            quantization="int8" if quantization is QuantizationChoice.INT8 else "float32",
            model_name=name,
            version=version,
            mlp=MlpConfig(epochs=epochs, seed=seed),
            drift_experiment=drift_experiment,
        )
    except TrainingError as exc:
        raise _fail(str(exc)) from exc

    with Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        tasks: dict[str, TaskID] = {}

        def report(stage: str, completed: float, total: float) -> None:
            if stage not in tasks:
                tasks[stage] = progress.add_task(stage, total=total)
            progress.update(tasks[stage], completed=completed, total=total)

        try:
            result = service.train(
                options, output_dir=out, private_key=private_key, progress=report
            )
        except TrainingError as exc:
            raise _fail(str(exc)) from exc

    _print_summary(result.report)
    console.print(
        f"artifact: {out}/model.tflite, manifest.json, manifest.sig "
        f"({result.manifest.name} {result.manifest.version}, {result.manifest.quantization}, "
        f"threshold {result.manifest.threshold:.4g})"
    )
    console.print(f"report:   {result.report_paths[0]}, {result.report_paths[1]}")
    if not result.report.passed:
        console.print("[red]some quality bars failed: see the report[/red]")
        raise typer.Exit(1)


def _print_summary(report: TrainingReport) -> None:
    from server.training.report import MODEL_LABELS

    table = Table(title="held-out test slice", title_justify="left")
    for column in ("model", "PR-AUC", "recall @ 1% FPR", "F1", "threshold"):
        table.add_column(column, justify="left" if column == "model" else "right")
    for key, metrics in report.models.items():
        table.add_row(
            MODEL_LABELS.get(key, key),
            f"{metrics.pr_auc:.4f}",
            f"{metrics.recall_at_1pct_fpr:.4f}",
            f"{metrics.f1:.4f}",
            f"{metrics.threshold:.4g}",
        )
    console.print(table)
    if report.drift is not None:
        drift = report.drift
        console.print(
            f"drift: {drift.drift_type} recall {drift.recall_before:.4f} (old model) -> "
            f"{drift.recall_after:.4f} (retrained)"
        )
    for check in report.checks:
        mark = "[green]pass[/green]" if check.passed else "[red]FAIL[/red]"
        console.print(f"{mark} {check.name}: {check.detail}")
