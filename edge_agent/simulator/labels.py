"""Ground truth kept apart from the transactions, released as chargebacks would be.

A card holder disputes a fraudulent payment days later, and a payment is only
known to be legitimate once the dispute window has passed. Consumers that
want realistic feedback ask the ledger what is known at a given time; offline
evaluation drains everything.
"""

import heapq
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from edge_agent.simulator.config import FraudType


@dataclass(frozen=True, slots=True)
class Label:
    """The truth about one transaction, and when it becomes known."""

    transaction_id: str
    fraud_type: FraudType | None
    timestamp: datetime
    available_at: datetime

    @property
    def is_fraud(self) -> bool:
        return self.fraud_type is not None

    def as_json_dict(self) -> dict[str, Any]:
        """JSON-ready form used by the ``simulate`` command's labels file."""
        return {
            "transaction_id": self.transaction_id,
            "is_fraud": self.fraud_type is not None,
            "fraud_type": None if self.fraud_type is None else self.fraud_type.value,
            "timestamp": self.timestamp.isoformat(),
            "available_at": self.available_at.isoformat(),
        }


class LabelLedger:
    """Pending labels, each handed out once: by availability time, or all at once."""

    def __init__(self) -> None:
        self._pending: list[tuple[datetime, int, Label]] = []
        self._sequence = 0
        self._recorded = 0
        self._released = 0

    def __len__(self) -> int:
        return len(self._pending)

    @property
    def recorded(self) -> int:
        """Labels recorded since creation, released or not."""
        return self._recorded

    @property
    def released_count(self) -> int:
        """Labels handed out so far."""
        return self._released

    def record(self, label: Label) -> None:
        heapq.heappush(self._pending, (label.available_at, self._sequence, label))
        self._sequence += 1
        self._recorded += 1

    def released(self, until: datetime) -> list[Label]:
        """Labels that became available at or before ``until`` and were not handed out yet."""
        pending = self._pending
        out: list[Label] = []
        while pending and pending[0][0] <= until:
            out.append(heapq.heappop(pending)[2])
        self._released += len(out)
        return out

    def drain(self) -> list[Label]:
        """Every pending label, in the order the transactions were emitted."""
        pending = sorted(self._pending, key=lambda item: item[1])
        self._pending = []
        self._released += len(pending)
        return [item[2] for item in pending]
