"""Labelled feature matrices: simulated traffic replayed through the agent's own feature code.

A model only ever sees vectors computed by :class:`edge_agent.features.FeatureExtractor`,
fed in timestamp order exactly as on a device, so per-card state (velocity, habits,
last location) carries across the boundaries between train, validation and test.
Labels come from the simulator's ledger, apart from the traffic, and are joined by
transaction id.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import islice

import numpy as np
import numpy.typing as npt

from edge_agent.features import N_FEATURES, FeatureExtractor
from edge_agent.protocol.transaction import Transaction
from edge_agent.simulator import Simulator, SimulatorConfig
from server.training.exceptions import DatasetError

logger = logging.getLogger(__name__)

LEGITIMATE = ""
"""Fraud type of a legitimate transaction in :attr:`Dataset.fraud_types`."""

_CHUNK = 10_000
# The simulator's default world has 40,000 cards and 400 stores for 2 transactions per
# second; scaling both with the rate keeps each card's and store's traffic realistic.
_CARDS_PER_TPS = 20_000
_STORES_PER_TPS = 200
_MIN_CARDS = 1_000
_MIN_STORES = 100

ProgressCallback = Callable[[float, float], None]
"""(completed, total) simulated seconds."""


@dataclass(frozen=True)
class TrafficConfig:
    """What to simulate: a seeded world, how long, how busy, and whether fraud drifts."""

    seed: int = 0
    days: float = 10.0
    transactions_per_second: float = 0.5
    fraud_rate: float = 0.01
    drift_after_days: float | None = None
    drift_rate: float = 0.005

    def simulator_config(self) -> SimulatorConfig:
        defaults = SimulatorConfig()
        rate = self.transactions_per_second
        return SimulatorConfig(
            seed=self.seed,
            n_cards=max(_MIN_CARDS, round(rate * _CARDS_PER_TPS)),
            n_stores=max(_MIN_STORES, round(rate * _STORES_PER_TPS)),
            transactions_per_second=rate,
            fraud_rate=self.fraud_rate,
            drift_at=(
                None
                if self.drift_after_days is None
                else defaults.start + timedelta(days=self.drift_after_days)
            ),
            drift_rate=self.drift_rate,
        )


@dataclass(frozen=True)
class Dataset:
    """Rows in timestamp order: features, label (1 = fraud), fraud type, time (epoch s)."""

    features: npt.NDArray[np.float32]
    labels: npt.NDArray[np.int8]
    fraud_types: npt.NDArray[np.str_]
    timestamps: npt.NDArray[np.float64]
    weights: npt.NDArray[np.float64] | None = None
    """How many transactions each row stands for (see ``evaluation``); None: one each."""

    def __post_init__(self) -> None:
        n = len(self.labels)
        if self.features.shape != (n, N_FEATURES):
            raise DatasetError(
                f"features have shape {self.features.shape}, not ({n}, {N_FEATURES})"
            )
        if len(self.fraud_types) != n or len(self.timestamps) != n:
            raise DatasetError("features, labels, fraud types and timestamps differ in length")
        if self.weights is not None and len(self.weights) != n:
            raise DatasetError("weights and labels differ in length")

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def positives(self) -> int:
        return int(self.labels.sum())

    @property
    def start(self) -> datetime:
        return datetime.fromtimestamp(float(self.timestamps[0]), UTC)

    @property
    def end(self) -> datetime:
        return datetime.fromtimestamp(float(self.timestamps[-1]), UTC)

    def positives_by_type(self) -> dict[str, int]:
        counts = Counter(str(kind) for kind in self.fraud_types[self.labels == 1])
        return dict(sorted(counts.items()))

    def between(self, start: datetime, end: datetime) -> Dataset:
        """The rows stamped in ``[start, end)``."""
        low, high = np.searchsorted(self.timestamps, [start.timestamp(), end.timestamp()])
        if high <= low:
            raise DatasetError(f"no transactions between {start} and {end}")
        return self.rows(slice(int(low), int(high)))

    def rows(self, window: slice) -> Dataset:
        return Dataset(
            features=self.features[window],
            labels=self.labels[window],
            fraud_types=self.fraud_types[window],
            timestamps=self.timestamps[window],
            weights=None if self.weights is None else self.weights[window],
        )


@dataclass(frozen=True)
class Split:
    """Time-ordered: validation starts where training ends, the test slice comes last."""

    train: Dataset
    validation: Dataset
    test: Dataset


def split_by_days(
    dataset: Dataset,
    *,
    origin: datetime,
    train_days: float,
    validation_days: float,
    test_days: float,
) -> Split:
    """Consecutive windows from ``origin``: training, then validation, then test."""
    train_end = origin + timedelta(days=train_days)
    validation_end = train_end + timedelta(days=validation_days)
    test_end = validation_end + timedelta(days=test_days)
    return Split(
        train=dataset.between(origin, train_end),
        validation=dataset.between(train_end, validation_end),
        test=dataset.between(validation_end, test_end),
    )


def split_by_fraction(dataset: Dataset, *, validation: float, test: float) -> Split:
    """Consecutive slices by row count: training, then validation, then the latest rows
    as the test slice. For data whose start and busyness are not known in advance."""
    n = len(dataset)
    train_end = round(n * (1.0 - validation - test))
    validation_end = round(n * (1.0 - test))
    if not 0 < train_end < validation_end < n:
        raise DatasetError(f"{n} rows are too few to split into training, validation and test")
    return Split(
        train=dataset.rows(slice(0, train_end)),
        validation=dataset.rows(slice(train_end, validation_end)),
        test=dataset.rows(slice(validation_end, n)),
    )


def _chunks(stream: Iterator[Transaction]) -> Iterator[list[Transaction]]:
    while chunk := list(islice(stream, _CHUNK)):
        yield chunk


def simulate(config: TrafficConfig, *, progress: ProgressCallback | None = None) -> Dataset:
    """Simulate ``config.days`` of traffic, compute features in order, and join the labels."""
    simulator = Simulator(config.simulator_config())
    start = simulator.config.start
    total = config.days * 86_400.0
    extractor = FeatureExtractor()
    features: list[npt.NDArray[np.float32]] = []
    timestamps: list[float] = []
    labels: list[int] = []
    fraud_types: list[str] = []
    for chunk in _chunks(simulator.stream(until=start + timedelta(days=config.days))):
        features.append(extractor.transform_many(chunk))
        truth = {label.transaction_id: label for label in simulator.labels.drain()}
        for tx in chunk:
            label = truth.get(tx.transaction_id)
            if label is None:
                raise DatasetError(f"transaction {tx.transaction_id} has no label")
            timestamps.append(tx.timestamp.timestamp())
            labels.append(1 if label.is_fraud else 0)
            fraud_types.append(LEGITIMATE if label.fraud_type is None else label.fraud_type.value)
        if progress is not None:
            progress(min(total, timestamps[-1] - start.timestamp()), total)
    if not labels:
        raise DatasetError("the simulation produced no transactions")
    if progress is not None:
        progress(total, total)
    dataset = Dataset(
        features=np.concatenate(features),
        labels=np.asarray(labels, dtype=np.int8),
        fraud_types=np.asarray(fraud_types, dtype=np.str_),
        timestamps=np.asarray(timestamps, dtype=np.float64),
    )
    logger.info(
        "simulated %d transactions over %.1f days (seed %d), %d fraudulent",
        len(dataset),
        config.days,
        config.seed,
        dataset.positives,
    )
    return dataset
