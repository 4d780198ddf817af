"""What the neural network has to beat, on the same split and the same features.

* A rules engine of the kind a fraud team writes by hand: a high amount, a card used
  many times in a few minutes, a burst of tiny payments at one terminal. Its three
  thresholds are tuned on the validation slice.
* scikit-learn's HistGradientBoostingClassifier, the strong tabular reference.
"""

from __future__ import annotations

import itertools
import logging
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from edge_agent.features import FEATURE_NAMES
from server.training.dataset import Dataset

logger = logging.getLogger(__name__)

_AMOUNT = FEATURE_NAMES.index("amount_eur_log")
_CARD_VELOCITY = FEATURE_NAMES.index("card_tx_10m")
_TERMINAL_SMALL = FEATURE_NAMES.index("terminal_small_tx_10m")
_RULES = 3

# Candidate thresholds searched exhaustively (9 x 21 x 21 combinations); "never" disables a rule.
_AMOUNT_QUANTILES = (0.9, 0.95, 0.98, 0.99, 0.995, 0.998, 0.999, 0.9995)
_COUNTS = tuple(range(1, 21))
_NEVER = math.inf


@dataclass(frozen=True)
class RulesBaseline:
    """Flag a payment by amount, card velocity or terminal velocity."""

    amount_eur: float
    """At or above this amount in EUR."""
    card_tx_10m: float
    """At least this many earlier payments of the card in the last 10 minutes."""
    terminal_small_tx_10m: float
    """At least this many earlier payments under 5 EUR at the terminal in the last 10 minutes."""

    def fired(self, features: npt.NDArray[np.float32]) -> npt.NDArray[np.bool_]:
        """One column per rule."""
        return np.column_stack(
            [
                np.expm1(features[:, _AMOUNT].astype(np.float64)) >= self.amount_eur,
                features[:, _CARD_VELOCITY] >= self.card_tx_10m,
                features[:, _TERMINAL_SMALL] >= self.terminal_small_tx_10m,
            ]
        )

    def score(self, features: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """The share of rules that fire: 0, 1/3, 2/3 or 1."""
        shares: npt.NDArray[np.float32] = self.fired(features).mean(axis=1).astype(np.float32)
        return shares

    @classmethod
    def tune(cls, validation: Dataset) -> RulesBaseline:
        """The thresholds whose "any rule fires" has the best F1 on ``validation``."""
        features = validation.features
        labels = validation.labels.astype(bool)
        amounts = np.expm1(features[:, _AMOUNT].astype(np.float64))
        amount_options = (*np.quantile(amounts, _AMOUNT_QUANTILES).tolist(), _NEVER)
        count_options = (*_COUNTS, _NEVER)
        masks = (
            {t: amounts >= t for t in amount_options},
            {t: features[:, _CARD_VELOCITY] >= t for t in count_options},
            {t: features[:, _TERMINAL_SMALL] >= t for t in count_options},
        )
        positives = int(labels.sum())
        best, best_f1 = (_NEVER, _NEVER, _NEVER), -1.0
        for combination in itertools.product(amount_options, count_options, count_options):
            flagged = masks[0][combination[0]] | masks[1][combination[1]]
            flagged |= masks[2][combination[2]]
            true_positives = int(np.count_nonzero(flagged & labels))
            f1 = 2 * true_positives / (int(np.count_nonzero(flagged)) + positives)
            if f1 > best_f1:
                best, best_f1 = combination, f1
        rules = cls(amount_eur=best[0], card_tx_10m=best[1], terminal_small_tx_10m=best[2])
        logger.info("rules baseline tuned on validation: %s (F1 %.3f)", rules, best_f1)
        return rules


def train_gradient_boosting(train: Dataset, *, seed: int) -> Any:
    """A fitted HistGradientBoostingClassifier (scikit-learn has no useful types)."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    model = HistGradientBoostingClassifier(max_iter=300, early_stopping=True, random_state=seed)
    model.fit(train.features, train.labels)
    logger.info("gradient boosting: %d iterations", model.n_iter_)
    return model


def gradient_boosting_scores(
    model: Any, features: npt.NDArray[np.float32]
) -> npt.NDArray[np.float32]:
    return np.asarray(model.predict_proba(features)[:, 1], dtype=np.float32)
