"""Metrics agree with scikit-learn, and the threshold means what the agent reads it to mean."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from server.training.evaluation import (
    average_precision,
    evaluate,
    max_f1_threshold,
    recall_at_fpr,
    roc_auc,
)
from server.training.exceptions import TrainingError


def _sample(seed: int, n: int = 20_000) -> tuple[npt.NDArray[Any], npt.NDArray[Any]]:
    rng = np.random.default_rng(seed)
    labels = (rng.random(n) < 0.02).astype(np.int8)
    scores = np.clip(rng.normal(0.2, 0.15, n) + labels * rng.normal(0.4, 0.2, n), 0, 1)
    return labels, np.round(scores, 3).astype(np.float32)  # rounding makes ties


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pr_auc_and_roc_auc_match_scikit_learn(seed: int) -> None:
    labels, scores = _sample(seed)
    assert average_precision(labels, scores) == pytest.approx(
        average_precision_score(labels, scores), abs=1e-12
    )
    assert roc_auc(labels, scores) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)


def test_recall_at_fpr_is_the_best_recall_within_the_fpr() -> None:
    labels, scores = _sample(3)
    best = 0.0
    for cut in np.unique(scores):
        flagged = scores >= cut
        if np.mean(flagged[labels == 0]) <= 0.01:
            best = max(best, float(np.mean(flagged[labels == 1])))
    assert recall_at_fpr(labels, scores, 0.01) == pytest.approx(best)


def test_max_f1_threshold_is_best_and_between_scores() -> None:
    labels, scores = _sample(4)
    threshold = max_f1_threshold(labels, scores)
    assert threshold not in set(scores.tolist())  # "at or above" and "above" agree

    def f1(cut: float) -> float:
        flagged = scores >= cut
        tp = np.sum(flagged & (labels == 1))
        return float(2 * tp / (np.sum(flagged) + np.sum(labels)))

    best = f1(threshold)
    assert all(f1(float(cut)) <= best + 1e-12 for cut in np.unique(scores))


def test_evaluate_reports_recall_by_fraud_type() -> None:
    labels = np.array([1, 1, 1, 0, 0, 0, 1, 0], dtype=np.int8)
    scores = np.array([0.9, 0.2, 0.8, 0.1, 0.3, 0.6, 0.7, 0.05], dtype=np.float32)
    kinds = np.array(["a", "a", "b", "", "", "", "b", ""])
    metrics = evaluate(labels, scores, kinds, threshold=0.5)
    assert metrics.recall_by_type == {"a": 0.5, "b": 1.0}
    assert metrics.positives_by_type == {"a": 2, "b": 2}
    assert metrics.recall == 0.75
    assert metrics.precision == 0.75
    assert metrics.false_positive_rate == 0.25
    assert metrics.f1 == pytest.approx(0.75)


def test_metrics_need_both_classes() -> None:
    with pytest.raises(TrainingError, match="both"):
        average_precision(np.zeros(10, dtype=np.int8), np.linspace(0, 1, 10))
