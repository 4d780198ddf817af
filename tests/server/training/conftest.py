"""Training tests: one training run per session, on a fixed seed, shared by every test.

They do not touch the database, so they run once, in the production-profile pass, and
are deselected from the embedded pass of ``make test``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

# Loads the device's TFLite runtime before anything imports TensorFlow (see model.py).
from server.training import model as _model  # noqa: F401
from server.training.model import MlpConfig
from server.training.service import TrainingOptions, TrainingResult, train

HERE = Path(__file__).resolve().parent

# Just large enough for stable numbers: about a quarter of a million transactions for
# the main run and 370,000 for the drift experiment.
SEED = 7
OPTIONS = TrainingOptions(
    seed=SEED,
    transactions_per_second=0.25,
    mlp=MlpConfig(seed=SEED),
    drift_experiment=True,
    version="test-1",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("EDGEPLANE_TEST_PROFILE") != "embedded":
        return
    keep: list[pytest.Item] = []
    drop: list[pytest.Item] = []
    for item in items:
        (drop if HERE in item.path.resolve().parents else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.fixture(scope="session")
def signing_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture(scope="session")
def trained(
    tmp_path_factory: pytest.TempPathFactory, signing_key: Ed25519PrivateKey
) -> TrainingResult:
    return train(OPTIONS, output_dir=tmp_path_factory.mktemp("artifact"), private_key=signing_key)
