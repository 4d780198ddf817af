"""The training report: JSON for machines and a Markdown page for people.

Everything the quality bars are judged on is in it: the data and its time-ordered
split, each model's metrics on the held-out slice, the bars and whether they hold, how
closely the TFLite files agree with Keras, the artifact, and the drift experiment.
"""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path
from typing import Final

from pydantic import BaseModel, ConfigDict

from server.training.evaluation import Metrics

logger = logging.getLogger(__name__)

REPORT_JSON: Final = "report.json"
REPORT_MARKDOWN: Final = "report.md"

MODEL_LABELS: Final = {
    "tflite_float32": "TFLite float32",
    "tflite_int8": "TFLite int8",
    "gradient_boosting": "HistGradientBoosting",
    "rules": "Rules",
}


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SliceSummary(_Frozen):
    start: datetime
    end: datetime
    rows: int
    positives: int
    positives_by_type: dict[str, int]


class DataSummary(_Frozen):
    seed: int
    days: float
    transactions_per_second: float
    fraud_rate: float
    cards: int
    stores: int
    train: SliceSummary
    validation: SliceSummary
    test: SliceSummary


class AgreementSummary(_Frozen):
    """TFLite against Keras on the held-out rows."""

    max_abs_diff: float
    mean_abs_diff: float
    p99_abs_diff: float


class Check(_Frozen):
    name: str
    passed: bool
    detail: str


class RulesSummary(_Frozen):
    """Tuned thresholds; None where the tuning switched a rule off."""

    amount_eur: float | None
    card_tx_10m: float | None
    terminal_small_tx_10m: float | None


class ArtifactSummary(_Frozen):
    directory: str
    name: str
    version: str
    quantization: str
    threshold: float
    tflite_sha256: str
    size_bytes: int


class DriftReport(_Frozen):
    """A model trained before a new fraud pattern, against one retrained after it."""

    drift_at: datetime
    drift_type: str
    days: float
    before_training: SliceSummary
    after_training: SliceSummary
    test: SliceSummary
    before_on_pre_drift: Metrics
    """The old model on its own (pre-drift) validation day."""
    before_on_test: Metrics
    after_on_test: Metrics

    @property
    def recall_before(self) -> float:
        return self.before_on_test.recall_by_type.get(self.drift_type, 0.0)

    @property
    def recall_after(self) -> float:
        return self.after_on_test.recall_by_type.get(self.drift_type, 0.0)


class TrainingReport(_Frozen):
    created_at: datetime
    feature_spec_version: int
    threshold_policy: str
    data: DataSummary
    models: dict[str, Metrics]
    agreement: dict[str, AgreementSummary]
    rules: RulesSummary
    checks: list[Check]
    artifact: ArtifactSummary | None
    drift: DriftReport | None
    timings_seconds: dict[str, float]

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks)


def _f(value: float) -> str:
    return f"{value:.4f}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return [*lines, ""]


def _slice_rows(slices: dict[str, SliceSummary]) -> list[list[str]]:
    return [
        [
            name,
            f"{s.start:%Y-%m-%d %H:%M} to {s.end:%Y-%m-%d %H:%M}",
            f"{s.rows:,}",
            f"{s.positives:,}",
            ", ".join(f"{kind} {n:,}" for kind, n in s.positives_by_type.items()),
        ]
        for name, s in slices.items()
    ]


_SLICE_HEADER: Final = ["slice", "time (UTC)", "transactions", "fraud", "fraud by type"]
_METRICS_HEADER: Final = [
    "model",
    "PR-AUC",
    "ROC-AUC",
    "recall @ 1% FPR",
    "threshold",
    "precision",
    "recall",
    "F1",
    "FPR",
]


def _metrics_row(label: str, m: Metrics) -> list[str]:
    return [
        label,
        _f(m.pr_auc),
        _f(m.roc_auc),
        _f(m.recall_at_1pct_fpr),
        f"{m.threshold:.4g}",
        _f(m.precision),
        _f(m.recall),
        _f(m.f1),
        f"{m.false_positive_rate:.5f}",
    ]


def render_markdown(report: TrainingReport) -> str:
    data = report.data
    lines = [
        "# Fraud model training report",
        "",
        f"Created {report.created_at:%Y-%m-%d %H:%M:%S} UTC, feature spec "
        f"v{report.feature_spec_version}, seed {data.seed}: {data.days:g} simulated days at "
        f"{data.transactions_per_second:g} transactions/s ({data.cards:,} cards, "
        f"{data.stores:,} stores), fraud rate {data.fraud_rate:.2%}.",
        "",
        "## Data (time-ordered split)",
        "",
        *_table(
            _SLICE_HEADER,
            _slice_rows({"train": data.train, "validation": data.validation, "test": data.test}),
        ),
        "## Held-out test slice",
        "",
        f"Thresholds: {report.threshold_policy}",
        "",
        *_table(
            _METRICS_HEADER,
            [_metrics_row(MODEL_LABELS.get(k, k), m) for k, m in report.models.items()],
        ),
    ]
    kinds = sorted({kind for m in report.models.values() for kind in m.recall_by_type})
    lines += [
        "### Recall by fraud type (at each model's threshold)",
        "",
        *_table(
            ["fraud type", "fraud", *(MODEL_LABELS.get(k, k) for k in report.models)],
            [
                [
                    kind,
                    f"{data.test.positives_by_type.get(kind, 0):,}",
                    *(_f(m.recall_by_type.get(kind, 0.0)) for m in report.models.values()),
                ]
                for kind in kinds
            ],
        ),
        "## Quality bars",
        "",
        *_table(
            ["", "bar", "measured"],
            [["✅" if c.passed else "❌", c.name, c.detail] for c in report.checks],
        ),
        "## TFLite against Keras (held-out rows)",
        "",
        *_table(
            ["variant", "max |Δ|", "mean |Δ|", "99th percentile |Δ|"],
            [
                [name, f"{a.max_abs_diff:.2e}", f"{a.mean_abs_diff:.2e}", f"{a.p99_abs_diff:.2e}"]
                for name, a in report.agreement.items()
            ],
        ),
        "## Rules baseline (tuned on validation)",
        "",
        *_table(
            ["rule", "flags at or above"],
            [
                ["amount (EUR)", _rule(report.rules.amount_eur, ".2f")],
                ["card payments in the last 10 min", _rule(report.rules.card_tx_10m, ".0f")],
                [
                    "payments under 5 EUR at the terminal in the last 10 min",
                    _rule(report.rules.terminal_small_tx_10m, ".0f"),
                ],
            ],
        ),
    ]
    if report.artifact is not None:
        a = report.artifact
        lines += [
            "## Artifact",
            "",
            f"`{a.directory}`: {a.name} {a.version}, {a.quantization}, threshold "
            f"{a.threshold:.6g}, {a.size_bytes:,} bytes, sha256 `{a.tflite_sha256}`.",
            "",
        ]
    if report.drift is not None:
        lines += _drift_markdown(report.drift)
    lines += [
        "## Timings",
        "",
        *_table(["stage", "seconds"], [[k, f"{v:.1f}"] for k, v in report.timings_seconds.items()]),
    ]
    return "\n".join(lines)


def _rule(value: float | None, spec: str) -> str:
    return "off" if value is None else format(value, spec)


def _drift_markdown(drift: DriftReport) -> list[str]:
    kind = drift.drift_type
    before, after = drift.before_on_test, drift.after_on_test
    return [
        "## Drift experiment",
        "",
        f"A new fraud pattern, `{kind}`, starts at {drift.drift_at:%Y-%m-%d %H:%M} UTC "
        f"({drift.days:g} simulated days in all). The old model was trained before it; the "
        "retrained one on the week after it. Both are scored on the same later slice "
        "(Keras scores; the TFLite float32 file matches them).",
        "",
        *_table(
            _SLICE_HEADER,
            _slice_rows(
                {
                    "old model: train + validation": drift.before_training,
                    "retrained: train + validation": drift.after_training,
                    "test (after drift)": drift.test,
                }
            ),
        ),
        *_table(
            [
                "model",
                "slice",
                "PR-AUC",
                f"{kind} recall",
                f"{kind} recall @ 1% FPR",
                "recall, all fraud",
            ],
            [
                [
                    "old",
                    "its validation day, before drift",
                    _f(drift.before_on_pre_drift.pr_auc),
                    "",
                    "",
                    _f(drift.before_on_pre_drift.recall),
                ],
                [
                    "old",
                    "test, after drift",
                    _f(before.pr_auc),
                    _f(drift.recall_before),
                    _f(before.recall_by_type_at_1pct_fpr.get(kind, 0.0)),
                    _f(before.recall),
                ],
                [
                    "retrained",
                    "test, after drift",
                    _f(after.pr_auc),
                    _f(drift.recall_after),
                    _f(after.recall_by_type_at_1pct_fpr.get(kind, 0.0)),
                    _f(after.recall),
                ],
            ],
        ),
    ]


def write_report(report: TrainingReport, directory: Path) -> tuple[Path, Path]:
    """Write ``report.json`` and ``report.md``; returns their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    json_path = directory / REPORT_JSON
    markdown_path = directory / REPORT_MARKDOWN
    json_path.write_text(report.model_dump_json(indent=2) + "\n", encoding="utf-8")
    markdown_path.write_text(render_markdown(report), encoding="utf-8")
    logger.info("wrote %s and %s", json_path, markdown_path)
    return json_path, markdown_path
