"""``edgeplane simulate``: JSON lines out, labels in their own file."""

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import typer
from typer.testing import CliRunner

from edge_agent.protocol import Transaction
from edge_agent.simulator import SimulatorConfig
from edge_agent.simulator.cli import simulate_app

runner = CliRunner()
SMALL_WORLD = ["--cards", "400", "--stores", "40", "--quiet"]


def read_lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def test_writes_transactions_and_labels_to_separate_files(tmp_path: Path) -> None:
    out, labels = tmp_path / "tx.jsonl", tmp_path / "labels.jsonl"
    result = runner.invoke(
        simulate_app,
        [
            *("--count", "300", "--seed", "3", "--fraud-rate", "0.2"),
            *("-o", str(out), "--labels", str(labels), *SMALL_WORLD),
        ],
    )

    assert result.exit_code == 0, result.output
    transactions = [Transaction.model_validate_json(line) for line in read_lines(out)]
    label_rows = [json.loads(line) for line in read_lines(labels)]
    assert len(transactions) == 300
    assert [row["transaction_id"] for row in label_rows] == [
        tx.transaction_id for tx in transactions
    ]
    assert any(row["is_fraud"] for row in label_rows)
    assert all(
        datetime.fromisoformat(row["available_at"]) > datetime.fromisoformat(row["timestamp"])
        for row in label_rows
    )


def test_same_seed_writes_the_same_file(tmp_path: Path) -> None:
    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    for path in (first, second):
        result = runner.invoke(
            simulate_app, ["--count", "200", "--seed", "8", "-o", str(path), *SMALL_WORLD]
        )
        assert result.exit_code == 0, result.output

    assert first.read_bytes() == second.read_bytes()


def test_writes_to_stdout_by_default() -> None:
    result = runner.invoke(simulate_app, ["--count", "25", *SMALL_WORLD])

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 25
    assert all(Transaction.model_validate_json(line) for line in lines)


def test_duration_bounds_simulated_time_and_drift_accepts_an_offset(tmp_path: Path) -> None:
    out, labels = tmp_path / "tx.jsonl", tmp_path / "labels.jsonl"
    start = SimulatorConfig().start
    result = runner.invoke(
        simulate_app,
        [
            *("--duration", "3h", "--drift-at", "+1h", "--drift-rate", "0.2", "--rate", "1"),
            *("-o", str(out), "-l", str(labels), *SMALL_WORLD),
        ],
    )

    assert result.exit_code == 0, result.output
    transactions = [Transaction.model_validate_json(line) for line in read_lines(out)]
    rows = {row["transaction_id"]: row for row in map(json.loads, read_lines(labels))}
    assert transactions
    assert max(tx.timestamp for tx in transactions) < start + timedelta(hours=3)
    shifted = [
        tx for tx in transactions if rows[tx.transaction_id]["fraud_type"] == "merchant_shift"
    ]
    assert shifted
    assert min(tx.timestamp for tx in shifted) >= start + timedelta(hours=1)


def test_start_time_without_zone_is_utc(tmp_path: Path) -> None:
    out = tmp_path / "tx.jsonl"
    result = runner.invoke(
        simulate_app,
        ["--count", "5", "--start", "2027-03-01T08:00:00", "-o", str(out), *SMALL_WORLD],
    )

    assert result.exit_code == 0, result.output
    first = Transaction.model_validate_json(read_lines(out)[0])
    assert datetime(2027, 3, 1, 8, tzinfo=UTC) <= first.timestamp
    assert first.timestamp < datetime(2027, 3, 1, 9, tzinfo=UTC)


def test_refuses_a_malformed_duration() -> None:
    result = runner.invoke(simulate_app, ["--duration", "three hours", *SMALL_WORLD])

    assert result.exit_code != 0
    assert "duration" in result.output


def test_mounts_under_a_parent_command() -> None:
    app = typer.Typer()

    @app.command()
    def version() -> None:
        typer.echo("0")

    app.add_typer(simulate_app, name="simulate")
    result = runner.invoke(app, ["simulate", "--count", "3", *SMALL_WORLD])

    assert result.exit_code == 0, result.output
    assert len(result.stdout.splitlines()) == 3
