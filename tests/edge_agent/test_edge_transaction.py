"""The POS transaction wire model: what it accepts, refuses and normalises."""

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from edge_agent.protocol import Transaction


def wire(**overrides: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "transaction_id": "tx-1",
        "store_id": "store-00001",
        "terminal_id": "store-00001-t1",
        "card_token": "card_00000000000000aa",
        "amount": 12.5,
        "currency": "EUR",
        "merchant_category": "5411",
        "timestamp": "2026-01-05T12:00:00.250Z",
        "latitude": 48.8566,
        "longitude": 2.3522,
    }
    payload.update(overrides)
    return payload


def test_parses_json_line_into_utc_transaction() -> None:
    tx = Transaction.model_validate_json(json.dumps(wire()))

    assert tx.amount == 12.5
    assert tx.timestamp == datetime(2026, 1, 5, 12, 0, 0, 250_000, tzinfo=UTC)
    assert tx.timestamp.utcoffset() == timedelta(0)


def test_json_round_trip_is_lossless() -> None:
    tx = Transaction.model_validate_json(json.dumps(wire()))

    assert Transaction.model_validate_json(tx.model_dump_json()) == tx


def test_other_offsets_are_normalised_to_utc() -> None:
    tx = Transaction.model_validate(wire(timestamp="2026-01-05T14:00:00+02:00"))

    assert tx.timestamp == datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
    assert tx.timestamp.utcoffset() == timedelta(0)
    assert tx.timestamp.hour == 12


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("timestamp", "2026-01-05T12:00:00"),
        ("amount", 0),
        ("amount", -3.0),
        ("amount", "NaN"),
        ("amount", "Infinity"),
        ("currency", "eur"),
        ("currency", "EURO"),
        ("merchant_category", "541"),
        ("merchant_category", "54a1"),
        ("latitude", 90.5),
        ("latitude", -91),
        ("longitude", 180.01),
        ("longitude", -181),
        ("card_token", ""),
    ],
)
def test_refuses_invalid_field(field: str, value: object) -> None:
    with pytest.raises(ValidationError) as error:
        Transaction.model_validate_json(json.dumps(wire(**{field: value})))

    assert error.value.errors()[0]["loc"][0] == field


def test_refuses_unknown_fields() -> None:
    with pytest.raises(ValidationError):
        Transaction.model_validate(wire(is_fraud=True))


def test_is_immutable() -> None:
    tx = Transaction.model_validate(wire())

    with pytest.raises(ValidationError):
        tx.amount = 1.0  # type: ignore[misc]


def test_edge_agent_never_imports_the_server() -> None:
    code = (
        "import sys, edge_agent.features, edge_agent.protocol, edge_agent.simulator, "
        "edge_agent.simulator.cli\n"
        "leaked = sorted(m for m in sys.modules if m == 'server' or m.startswith('server.'))\n"
        "print(','.join(leaked))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[2],
    )

    assert result.stdout.strip() == ""
