"""The gate a retrained candidate must pass before it is registered.

Candidate and stable model are scored on the same held-out, time-later slice of the
candidate's snapshot, each at its own threshold, and compared threshold-free: PR-AUC,
and recall at a fixed false-positive rate. The candidate passes unless it is worse
than the stable model by more than a margin on either.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict

from server.training.evaluation import Labels, Scores, Weights, evaluate, recall_at_fpr

NO_STABLE = "no stable model to compare"


class GateSide(BaseModel):
    """One model's numbers on the gate's slice."""

    model_config = ConfigDict(frozen=True)

    pr_auc: float
    recall_at_fpr: float
    threshold: float
    precision: float
    recall: float


class GateMargins(BaseModel):
    model_config = ConfigDict(frozen=True)

    pr_auc: float
    recall: float
    false_positive_rate: float
    """The false-positive rate that recall is read at."""


class GateResult(BaseModel):
    """The verdict and the numbers on both sides; stored in the run and the model's lineage."""

    model_config = ConfigDict(frozen=True)

    passed: bool
    reason: str
    margins: GateMargins
    test_rows: int
    test_positives: int
    candidate: GateSide
    stable: GateSide | None = None
    stable_model_id: str | None = None
    stable_label: str | None = None


def side(
    labels: Labels,
    scores: Scores,
    fraud_types: npt.NDArray[np.str_],
    *,
    threshold: float,
    false_positive_rate: float,
    weights: Weights | None = None,
) -> GateSide:
    metrics = evaluate(labels, scores, fraud_types, threshold=threshold, weights=weights)
    return GateSide(
        pr_auc=metrics.pr_auc,
        recall_at_fpr=recall_at_fpr(labels, scores, false_positive_rate, weights),
        threshold=threshold,
        precision=metrics.precision,
        recall=metrics.recall,
    )


def judge(
    candidate: GateSide,
    stable: GateSide | None,
    *,
    margins: GateMargins,
    test_rows: int,
    test_positives: int,
    stable_model_id: str | None = None,
    stable_label: str | None = None,
    no_stable_reason: str = NO_STABLE,
) -> GateResult:
    """Pass or fail ``candidate`` against ``stable``; the reason quotes both sides."""
    passed = True
    reason = no_stable_reason
    if stable is not None:
        fpr = f"{margins.false_positive_rate:.2%} FPR"
        failures: list[str] = []
        findings: list[str] = []
        for name, new, old, margin in (
            ("PR-AUC", candidate.pr_auc, stable.pr_auc, margins.pr_auc),
            (f"recall at {fpr}", candidate.recall_at_fpr, stable.recall_at_fpr, margins.recall),
        ):
            text = (
                f"{name} {new:.4f} vs stable {old:.4f} "
                f"(difference {new - old:+.4f}, margin {margin})"
            )
            (failures if new < old - margin else findings).append(text)
        passed = not failures
        reason = (
            "worse than stable beyond the margin: " + "; ".join(failures)
            if failures
            else "not worse than stable beyond the margins: " + "; ".join(findings)
        )
    return GateResult(
        passed=passed,
        reason=reason,
        margins=margins,
        test_rows=test_rows,
        test_positives=test_positives,
        candidate=candidate,
        stable=stable,
        stable_model_id=stable_model_id,
        stable_label=stable_label,
    )
