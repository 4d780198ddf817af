"""Feature profiles and the population stability index (PSI), for drift checks.

A profile is, per feature, the edges of quantile bins of a model's training rows and
the share of rows in each bin. Bin ``i`` is ``(edges[i-1], edges[i]]``. The first bin
holds everything below the training minimum and the last everything above the
maximum, so a value outside what the model saw still lands in a bin (whose expected
share is 0). Each quantile is also a bin of its own, ``(q - ulp, q]``: a feature that
is mostly one value (0 for a new card's z-score) keeps that value apart from its
neighbours, so a move off it shows. Repeated edges are merged.

PSI = sum over bins of (actual - expected) * ln(actual / expected), with shares
floored at ``PSI_FLOOR`` so an empty bin does not make it infinite. The usual reading:
below 0.1 no shift, 0.1 to 0.2 a moderate one, above 0.2 a significant one.
"""

from __future__ import annotations

from typing import Any, Final

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict

from edge_agent.features import FEATURE_NAMES

PSI_FLOOR: Final = 1e-4


class FeatureBins(BaseModel):
    model_config = ConfigDict(frozen=True)

    edges: list[float]
    proportions: list[float]
    """``len(edges) + 1`` shares that sum to 1."""


class FeatureProfile(BaseModel):
    """The distribution of each feature in the data a model was trained on."""

    model_config = ConfigDict(frozen=True)

    rows: int
    bins: int
    features: dict[str, FeatureBins]


def _edges(values: npt.NDArray[np.float64], bins: int) -> npt.NDArray[np.float64]:
    quantiles = np.quantile(values, np.linspace(0.0, 1.0, bins + 1)[1:-1])
    points = np.r_[values.min(), quantiles]
    edges: npt.NDArray[np.float64] = np.unique(
        np.r_[np.nextafter(points, -np.inf), quantiles, values.max()]
    )
    return edges


def _shares(values: npt.NDArray[np.float64], edges: npt.NDArray[np.float64]) -> list[float]:
    counts = np.bincount(np.searchsorted(edges, values, side="left"), minlength=len(edges) + 1)
    return [float(c) for c in counts / max(len(values), 1)]


def build_profile(features: npt.NDArray[np.floating[Any]], *, bins: int = 10) -> FeatureProfile:
    """The profile of ``features`` (rows x ``FEATURE_NAMES``)."""
    matrix = np.asarray(features, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[1] != len(FEATURE_NAMES) or len(matrix) == 0:
        raise ValueError(f"a profile needs rows of {len(FEATURE_NAMES)} features")
    profile: dict[str, FeatureBins] = {}
    for column, name in enumerate(FEATURE_NAMES):
        values = matrix[:, column]
        edges = _edges(values, bins)
        profile[name] = FeatureBins(
            edges=[float(e) for e in edges], proportions=_shares(values, edges)
        )
    return FeatureProfile(rows=len(matrix), bins=bins, features=profile)


def psi(expected: npt.ArrayLike, actual: npt.ArrayLike) -> float:
    """The population stability index between two distributions over the same bins."""
    e = np.maximum(np.asarray(expected, dtype=np.float64), PSI_FLOOR)
    a = np.maximum(np.asarray(actual, dtype=np.float64), PSI_FLOOR)
    if e.shape != a.shape:
        raise ValueError("PSI needs the same bins on both sides")
    return float(np.sum((a - e) * np.log(a / e)))


def feature_psi(
    profile: FeatureProfile, features: npt.NDArray[np.floating[Any]]
) -> dict[str, float]:
    """PSI of each profiled feature between the profile and ``features`` (rows x features)."""
    matrix = np.asarray(features, dtype=np.float64)
    result: dict[str, float] = {}
    for column, name in enumerate(FEATURE_NAMES):
        reference = profile.features.get(name)
        if reference is None:
            continue
        edges = np.asarray(reference.edges, dtype=np.float64)
        result[name] = psi(reference.proportions, _shares(matrix[:, column], edges))
    return result
