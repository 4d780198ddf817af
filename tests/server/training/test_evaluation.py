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


@pytest.mark.parametrize("seed", [5, 6])
def test_weighted_metrics_match_scikit_learn(seed: int) -> None:
    labels, scores = _sample(seed)
    weights = np.random.default_rng(seed).choice([1.0, 4.0, 25.0], len(labels))
    assert average_precision(labels, scores, weights) == pytest.approx(
        average_precision_score(labels, scores, sample_weight=weights), abs=1e-12
    )
    assert roc_auc(labels, scores, weights) == pytest.approx(
        roc_auc_score(labels, scores, sample_weight=weights), abs=1e-12
    )


def test_a_weight_counts_as_that_many_rows() -> None:
    """A sample of one in four of the traffic stands for four transactions."""
    labels, scores = _sample(7, n=4_000)
    kinds = np.where(labels == 1, "card_testing", "")
    weights = np.where(np.arange(len(labels)) % 3 == 0, 4, 1)
    repeated = np.repeat(np.arange(len(labels)), weights)
    weighted = evaluate(labels, scores, kinds, threshold=0.5, weights=weights.astype(float))
    spelled_out = evaluate(labels[repeated], scores[repeated], kinds[repeated], threshold=0.5)
    for field in ("pr_auc", "roc_auc", "precision", "recall", "false_positive_rate"):
        assert getattr(weighted, field) == pytest.approx(getattr(spelled_out, field)), field
    assert weighted.recall_by_type == pytest.approx(spelled_out.recall_by_type)
    assert weighted.rows == len(labels)
    assert max_f1_threshold(labels, scores, weights.astype(float)) == pytest.approx(
        max_f1_threshold(labels[repeated], scores[repeated])
    )
    # Unweighted, the same rows give other numbers: the weights matter.
    assert evaluate(labels, scores, kinds, threshold=0.5).precision != pytest.approx(
        weighted.precision
    )


@pytest.mark.parametrize("weights", [np.zeros(10), -np.ones(10), np.ones(9), np.full(10, np.nan)])
def test_bad_weights_are_refused(weights: npt.NDArray[Any]) -> None:
    labels = np.array([0, 1] * 5)
    with pytest.raises(TrainingError, match="weights"):
        average_precision(labels, np.linspace(0, 1, 10), weights)
