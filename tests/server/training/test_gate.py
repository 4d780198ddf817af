"""The gate's verdict on numbers: a candidate may not be worse than stable beyond a margin."""

from __future__ import annotations

import numpy as np

from server.training.gate import NO_STABLE, GateMargins, GateSide, judge, side

MARGINS = GateMargins(pr_auc=0.01, recall=0.02, false_positive_rate=0.01)


def _side(pr_auc: float, recall: float) -> GateSide:
    return GateSide(pr_auc=pr_auc, recall_at_fpr=recall, threshold=0.5, precision=0.9, recall=0.8)


def test_no_stable_passes() -> None:
    result = judge(_side(0.5, 0.5), None, margins=MARGINS, test_rows=100, test_positives=10)
    assert result.passed
    assert result.reason == NO_STABLE
    assert result.stable is None


def test_within_the_margins_passes() -> None:
    result = judge(
        _side(0.795, 0.69),
        _side(0.80, 0.70),
        margins=MARGINS,
        test_rows=100,
        test_positives=10,
        stable_label="fraud-1",
    )
    assert result.passed
    assert result.reason.startswith("not worse than stable")
    assert "PR-AUC 0.7950 vs stable 0.8000" in result.reason
    assert result.stable_label == "fraud-1"


def test_worse_pr_auc_fails_and_says_why() -> None:
    result = judge(
        _side(0.75, 0.70), _side(0.80, 0.70), margins=MARGINS, test_rows=1, test_positives=1
    )
    assert not result.passed
    assert result.reason.startswith("worse than stable beyond the margin: PR-AUC 0.7500 vs")
    assert "margin 0.01" in result.reason
    assert "recall" not in result.reason


def test_worse_recall_fails() -> None:
    result = judge(
        _side(0.80, 0.60), _side(0.80, 0.70), margins=MARGINS, test_rows=1, test_positives=1
    )
    assert not result.passed
    assert "recall at 1.00% FPR 0.6000 vs stable 0.7000" in result.reason


def test_side_reads_recall_at_the_chosen_rate() -> None:
    labels = np.array([0] * 98 + [1, 1])
    scores = np.r_[np.linspace(0.0, 0.5, 97), 0.95, 0.9, 0.3]
    kinds = np.array([""] * 100)
    # A legitimate 0.95 outranks both frauds: one false alarm is 1/98 of the legitimate.
    none_allowed = side(labels, scores, kinds, threshold=0.8, false_positive_rate=0.01)
    assert none_allowed.recall_at_fpr == 0.0
    one_allowed = side(labels, scores, kinds, threshold=0.8, false_positive_rate=0.02)
    assert one_allowed.recall_at_fpr == 0.5
    assert one_allowed.recall == 0.5
    assert one_allowed.precision == 0.5
    loose = side(labels, scores, kinds, threshold=0.8, false_positive_rate=0.5)
    assert loose.recall_at_fpr == 1.0
