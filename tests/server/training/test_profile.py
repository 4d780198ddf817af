"""Feature profiles and PSI, on numbers worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import pytest

from edge_agent.features import FEATURE_NAMES, N_FEATURES
from server.training.profile import PSI_FLOOR, build_profile, feature_psi, psi


def test_psi_of_known_distributions() -> None:
    assert psi([0.25, 0.25, 0.5], [0.25, 0.25, 0.5]) == 0.0
    expected = 0.4 * math.log(0.9 / 0.5) + (-0.4) * math.log(0.1 / 0.5)
    assert psi([0.5, 0.5], [0.9, 0.1]) == pytest.approx(expected)
    assert psi([0.5, 0.5], [0.9, 0.1]) == pytest.approx(0.8789, abs=1e-4)
    # An empty bin is floored, not infinite.
    empty = psi([0.5, 0.5, 0.0], [0.5, 0.4, 0.1])
    assert empty == pytest.approx(
        -0.1 * math.log(0.4 / 0.5) + (0.1 - PSI_FLOOR) * math.log(0.1 / PSI_FLOOR)
    )
    with pytest.raises(ValueError, match="same bins"):
        psi([0.5, 0.5], [1.0])


def _rows(rng: np.random.Generator, n: int) -> npt.NDArray[np.float64]:
    rows = rng.normal(size=(n, N_FEATURES))
    rows[:, FEATURE_NAMES.index("foreign_currency")] = rng.random(n) < 0.03
    rows[:, FEATURE_NAMES.index("mcc_luxury")] = 0.0
    rows[:, FEATURE_NAMES.index("card_tx_1m")] = np.where(rng.random(n) < 0.9, 0.0, rows[:, 0])
    return rows


def test_profile_bins_and_shares() -> None:
    rng = np.random.default_rng(0)
    profile = build_profile(_rows(rng, 10_000), bins=10)
    assert profile.rows == 10_000
    assert set(profile.features) == set(FEATURE_NAMES)
    for bins in profile.features.values():
        assert len(bins.proportions) == len(bins.edges) + 1
        assert sum(bins.proportions) == pytest.approx(1.0)
    amount = profile.features["amount_log"]
    # Below the minimum, nine inner deciles each with its own point bin, the maximum: a
    # tenth of the rows in each decile, none below the minimum or above the maximum.
    assert len(amount.edges) == 20
    assert amount.proportions[0] == 0.0
    assert amount.proportions[-1] == 0.0
    shares = np.sort(amount.proportions)
    assert shares[-10:] == pytest.approx([0.1] * 10, abs=0.002)
    assert shares[:-10].sum() < 0.002
    # A binary feature keeps its two values apart; a constant one has bins below and above.
    below_zero = float(np.nextafter(0.0, -1.0))
    assert profile.features["foreign_currency"].edges == [below_zero, 0.0, 1.0]
    assert profile.features["foreign_currency"].proportions == pytest.approx(
        [0.0, 0.97, 0.03, 0.0], abs=0.005
    )
    assert profile.features["mcc_luxury"].edges == [below_zero, 0.0]
    assert profile.features["mcc_luxury"].proportions == [0.0, 1.0, 0.0]


def test_psi_finds_the_shifted_feature_only() -> None:
    rng = np.random.default_rng(1)
    profile = build_profile(_rows(rng, 10_000))
    same = feature_psi(profile, _rows(rng, 2_000))
    assert max(same.values()) < 0.05

    shifted = _rows(rng, 2_000)
    shifted[:, FEATURE_NAMES.index("card_amount_zscore")] += 1.0
    shifted[:, FEATURE_NAMES.index("mcc_luxury")] = rng.random(2_000) < 0.3
    # Below everything seen in training: the bin under the minimum.
    shifted[:, FEATURE_NAMES.index("card_new")] = -1.0
    # Mostly 0 in training, moved off 0 but within the range seen.
    shifted[:, FEATURE_NAMES.index("card_tx_1m")] = -0.5
    values = feature_psi(profile, shifted)
    moved = ("card_amount_zscore", "mcc_luxury", "card_new", "card_tx_1m")
    assert all(values[name] > 0.2 for name in moved)
    others = {k: v for k, v in values.items() if k not in moved}
    assert max(others.values()) < 0.05


def test_profile_refuses_wrong_shapes() -> None:
    with pytest.raises(ValueError, match="features"):
        build_profile(np.zeros((10, 3)))
    with pytest.raises(ValueError, match="features"):
        build_profile(np.zeros((0, N_FEATURES)))
