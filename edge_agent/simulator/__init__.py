"""Seeded, reproducible point-of-sale traffic with labelled fraud and optional drift.

Used by tests, benchmarks, training and the demo. Transactions and their
ground truth travel separately: ``Simulator.stream()`` yields transactions,
``Simulator.labels`` releases labels as chargebacks would arrive.
"""

from edge_agent.simulator.config import (
    BASELINE_FRAUD_TYPES,
    DEFAULT_REGIONS,
    City,
    FraudType,
    Region,
    SimulatorConfig,
)
from edge_agent.simulator.engine import Simulator, generate
from edge_agent.simulator.labels import Label, LabelLedger
from edge_agent.simulator.world import Store

__all__ = [
    "BASELINE_FRAUD_TYPES",
    "DEFAULT_REGIONS",
    "City",
    "FraudType",
    "Label",
    "LabelLedger",
    "Region",
    "Simulator",
    "SimulatorConfig",
    "Store",
    "generate",
]
