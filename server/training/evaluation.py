"""Ranking and decision metrics for fraud scores, and the choice of a decision threshold.

Plain numpy, so that the same numbers can be computed wherever scores and labels meet
(training here; canary analysis later) without scikit-learn. ``average_precision``
and ``roc_auc`` agree with scikit-learn's ``average_precision_score`` and
``roc_auc_score``, ties included.

A transaction is flagged when its score is at or above the threshold, as the agent
and the registry read the manifest.

Every function takes optional row weights: how many transactions a row stands for.
Fleet data needs them: devices upload every anomaly but only a random share of the
rest, so each uploaded sample stands for 1/share transactions. Unweighted, precision,
false-positive rates and the threshold chosen on such data would be those of a world
with a fraction of the legitimate traffic.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict

from server.training.exceptions import TrainingError

MAX_FPR = 0.01
"""The false-positive rate at which ``recall_at_1pct_fpr`` is read."""

Scores = npt.NDArray[np.floating[Any]]
Labels = npt.NDArray[np.integer[Any] | np.bool_]
Weights = npt.NDArray[np.floating[Any]]


@dataclass(frozen=True)
class Curve:
    """(Weighted) counts at every distinct score, highest first: flag everything scored
    ``>= scores[i]``."""

    scores: npt.NDArray[np.float64]
    true_positives: npt.NDArray[np.float64]
    false_positives: npt.NDArray[np.float64]
    positives: float
    negatives: float

    @property
    def recall(self) -> npt.NDArray[np.float64]:
        return self.true_positives / self.positives

    @property
    def false_positive_rate(self) -> npt.NDArray[np.float64]:
        return self.false_positives / self.negatives

    @property
    def precision(self) -> npt.NDArray[np.float64]:
        return self.true_positives / (self.true_positives + self.false_positives)

    def average_precision(self) -> float:
        """PR-AUC as average precision: precision weighted by each step in recall."""
        return float(np.sum(np.diff(np.r_[0.0, self.recall]) * self.precision))

    def roc_auc(self) -> float:
        """Area under the ROC curve by trapezoids (ties count half, as rank statistics do)."""
        x = np.r_[0.0, self.false_positive_rate]
        y = np.r_[0.0, self.recall]
        return float(np.sum(np.diff(x) * (y[1:] + y[:-1]) / 2.0))


def row_weights(n: int, weights: Weights | None) -> npt.NDArray[np.float64]:
    """``weights`` checked (one positive finite number per row), or all ones."""
    if weights is None:
        return np.ones(n, dtype=np.float64)
    values = np.asarray(weights, dtype=np.float64)
    if values.shape != (n,):
        raise TrainingError(f"{values.shape[0] if values.ndim else 0} weights for {n} rows")
    if not np.all(np.isfinite(values) & (values > 0)):
        raise TrainingError("weights must be positive and finite")
    return values


def curve(labels: Labels, scores: Scores, weights: Weights | None = None) -> Curve:
    truth = np.asarray(labels).astype(bool)
    values = np.asarray(scores, dtype=np.float64)
    w = row_weights(len(truth), weights)
    if truth.all() or not truth.any():
        raise TrainingError("metrics need both fraudulent and legitimate transactions")
    if not np.all(np.isfinite(values)):
        raise TrainingError("scores must be finite")
    order = np.argsort(-values, kind="mergesort")
    values = values[order]
    fraud = np.where(truth[order], w[order], 0.0)
    legitimate = np.where(truth[order], 0.0, w[order])
    last_of_each = np.r_[np.flatnonzero(np.diff(values)), len(values) - 1]
    return Curve(
        scores=values[last_of_each],
        true_positives=np.cumsum(fraud)[last_of_each],
        false_positives=np.cumsum(legitimate)[last_of_each],
        positives=float(fraud.sum()),
        negatives=float(legitimate.sum()),
    )


def average_precision(labels: Labels, scores: Scores, weights: Weights | None = None) -> float:
    return curve(labels, scores, weights).average_precision()


def roc_auc(labels: Labels, scores: Scores, weights: Weights | None = None) -> float:
    return curve(labels, scores, weights).roc_auc()


def _cutoff_at_fpr(c: Curve, max_fpr: float) -> float:
    """The lowest score cut-off whose false-positive rate stays within ``max_fpr``."""
    allowed = np.flatnonzero(c.false_positive_rate <= max_fpr)
    return float(c.scores[allowed[-1]]) if len(allowed) else np.inf


def recall_at_fpr(
    labels: Labels, scores: Scores, max_fpr: float = MAX_FPR, weights: Weights | None = None
) -> float:
    """The best recall with at most ``max_fpr`` of legitimate transactions flagged."""
    c = curve(labels, scores, weights)
    allowed = np.flatnonzero(c.false_positive_rate <= max_fpr)
    return float(c.recall[allowed[-1]]) if len(allowed) else 0.0


def max_f1_threshold(labels: Labels, scores: Scores, weights: Weights | None = None) -> float:
    """The threshold with the best F1 on these scores.

    It is placed halfway to the next lower score seen, so that "at or above" and
    "above" flag the same transactions and a tiny numeric difference between
    runtimes does not move a score across it.
    """
    c = curve(labels, scores, weights)
    f1 = 2 * c.true_positives / (c.true_positives + c.false_positives + c.positives)
    best = int(np.argmax(f1))
    below = float(c.scores[best + 1]) if best + 1 < len(c.scores) else 0.0
    return float(np.clip((float(c.scores[best]) + below) / 2.0, 0.0, 1.0))


class Metrics(BaseModel):
    """One model's scores on one slice, at its threshold and threshold-free."""

    model_config = ConfigDict(frozen=True)

    rows: int
    positives: int
    pr_auc: float
    roc_auc: float
    recall_at_1pct_fpr: float
    threshold: float
    precision: float
    recall: float
    f1: float
    false_positive_rate: float
    recall_by_type: dict[str, float]
    recall_by_type_at_1pct_fpr: dict[str, float]
    positives_by_type: dict[str, int]


def evaluate(
    labels: Labels,
    scores: Scores,
    fraud_types: npt.NDArray[np.str_],
    *,
    threshold: float,
    weights: Weights | None = None,
) -> Metrics:
    """Every metric of the report for one model on one slice. ``rows`` and the
    positives are rows; every rate is weighted."""
    truth: npt.NDArray[np.bool_] = np.asarray(labels).astype(bool)
    values = np.asarray(scores, dtype=np.float64)
    w = row_weights(len(truth), weights)
    c = curve(truth, values, w)
    flagged = values >= threshold
    flagged_at_fpr = values >= _cutoff_at_fpr(c, MAX_FPR)
    true_positives = float(np.sum(w[flagged & truth]))
    false_positives = float(np.sum(w[flagged & ~truth]))
    precision = true_positives / (true_positives + false_positives) if np.any(flagged) else 0.0
    recall = true_positives / c.positives
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    kinds = sorted({str(kind) for kind in fraud_types[truth]})
    masks = {kind: truth & (fraud_types == kind) for kind in kinds}

    def caught(mask: npt.NDArray[np.bool_], hits: npt.NDArray[np.bool_]) -> float:
        return float(np.sum(w[mask & hits]) / np.sum(w[mask]))

    return Metrics(
        rows=len(truth),
        positives=int(truth.sum()),
        pr_auc=c.average_precision(),
        roc_auc=c.roc_auc(),
        recall_at_1pct_fpr=caught(truth, flagged_at_fpr),
        threshold=threshold,
        precision=precision,
        recall=recall,
        f1=f1,
        false_positive_rate=false_positives / c.negatives,
        recall_by_type={kind: caught(mask, flagged) for kind, mask in masks.items()},
        recall_by_type_at_1pct_fpr={
            kind: caught(mask, flagged_at_fpr) for kind, mask in masks.items()
        },
        positives_by_type={kind: int(mask.sum()) for kind, mask in masks.items()},
    )
