"""``edgeplane simulate``: write simulated transactions and, separately, their labels.

Transactions go out as JSON lines (stdout by default) in the exact wire format
of :class:`~edge_agent.protocol.transaction.Transaction`; labels go to their
own JSON lines file, so whatever reads the traffic never sees the truth.
"""

import json
import logging
import re
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from itertools import islice
from pathlib import Path
from typing import Annotated, TextIO

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from edge_agent.simulator.config import SimulatorConfig
from edge_agent.simulator.engine import Simulator
from edge_agent.simulator.labels import LabelLedger

logger = logging.getLogger(__name__)

simulate_app = typer.Typer(
    help="Generate seeded POS traffic with labelled fraud (transactions and labels apart).",
    add_completion=False,
)

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DEFAULT_COUNT = 10_000
_FLUSH_EVERY = 10_000
_PROGRESS_STEP = 1_000


def parse_duration(text: str) -> timedelta:
    """``90s``, ``15m``, ``6h``, ``2d`` or ``1w`` as a timedelta."""
    match = _DURATION.match(text)
    if match is None:
        raise typer.BadParameter(f"{text!r} is not a duration such as 90s, 15m, 6h, 2d or 1w")
    return timedelta(seconds=float(match.group(1)) * _UNIT_SECONDS[match.group(2)])


def parse_time(text: str, *, start: datetime) -> datetime:
    """An ISO 8601 time (naive means UTC) or ``+<duration>`` after ``start``."""
    if text.startswith("+"):
        return start + parse_duration(text[1:])
    try:
        value = datetime.fromisoformat(text)
    except ValueError as exc:
        raise typer.BadParameter(f"{text!r} is neither an ISO 8601 time nor +<duration>") from exc
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


@contextmanager
def _open_output(path: Path | None) -> Iterator[TextIO]:
    if path is None:
        yield sys.stdout
        return
    with path.open("w", encoding="utf-8") as handle:
        yield handle


@contextmanager
def _open_labels(path: Path | None) -> Iterator[TextIO | None]:
    """Labels are only written when asked for: they must never mix with the traffic."""
    if path is None:
        yield None
        return
    with path.open("w", encoding="utf-8") as handle:
        yield handle


def _write_labels(handle: TextIO | None, ledger: LabelLedger, counts: Counter[str]) -> None:
    for label in ledger.drain():
        counts[label.fraud_type.value if label.fraud_type is not None else "legitimate"] += 1
        if handle is not None:
            handle.write(json.dumps(label.as_json_dict(), separators=(",", ":")))
            handle.write("\n")


@simulate_app.callback(invoke_without_command=True)
def simulate(
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Transactions file (JSON lines); stdout if omitted."),
    ] = None,
    labels: Annotated[
        Path | None,
        typer.Option("--labels", "-l", help="Labels file (JSON lines); not written if omitted."),
    ] = None,
    count: Annotated[
        int | None,
        typer.Option(min=1, help=f"Transactions to write (default {_DEFAULT_COUNT:,})."),
    ] = None,
    duration: Annotated[
        str | None,
        typer.Option(help="Simulated time to cover, e.g. 90m, 6h, 7d; stops at count if both."),
    ] = None,
    seed: Annotated[int, typer.Option(min=0, help="Same seed, same stream.")] = 0,
    fraud_rate: Annotated[
        float, typer.Option(min=0.0, max=0.49, help="Share of baseline fraud.")
    ] = 0.01,
    drift_at: Annotated[
        str | None,
        typer.Option(help="Start of merchant_shift fraud: ISO time (naive = UTC) or +<duration>."),
    ] = None,
    drift_rate: Annotated[
        float, typer.Option(min=0.0, max=0.49, help="Share of merchant_shift after drift.")
    ] = 0.005,
    start: Annotated[
        str | None, typer.Option(help="Simulated start, ISO 8601 (naive = UTC).")
    ] = None,
    rate: Annotated[
        float, typer.Option(min=0.001, help="Average transactions per simulated second.")
    ] = 2.0,
    cards: Annotated[int, typer.Option(min=1, help="Number of card holders.")] = 40_000,
    stores: Annotated[int, typer.Option(min=1, help="Number of stores.")] = 400,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress or summary.")] = False,
) -> None:
    """Write simulated transactions, and their labels to a separate file."""
    defaults = SimulatorConfig()
    start_at = defaults.start if start is None else parse_time(start, start=defaults.start)
    try:
        config = SimulatorConfig(
            seed=seed,
            n_stores=stores,
            n_cards=cards,
            start=start_at,
            transactions_per_second=rate,
            fraud_rate=fraud_rate,
            drift_at=None if drift_at is None else parse_time(drift_at, start=start_at),
            drift_rate=drift_rate,
        )
    except ValidationError as exc:
        raise typer.BadParameter(str(exc)) from exc
    limit = count if count is not None or duration is not None else _DEFAULT_COUNT
    until = None if duration is None else start_at + parse_duration(duration)

    console = Console(stderr=True)
    simulator = Simulator(config)
    stream = simulator.stream(until=until)
    if limit is not None:
        stream = islice(stream, limit)
    label_counts: Counter[str] = Counter()
    written = 0
    with (
        _open_output(output) as out,
        _open_labels(labels) as label_handle,
        Progress(
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            TextColumn("{task.completed:,.0f}/{task.total:,.0f}"),
            TimeElapsedColumn(),
            console=console,
            disable=quiet,
            transient=True,
        ) as progress,
    ):
        if until is None or limit is not None:
            task = progress.add_task("transactions", total=limit)
        else:
            task = progress.add_task("simulated seconds", total=(until - start_at).total_seconds())
        for tx in stream:
            out.write(tx.model_dump_json())
            out.write("\n")
            written += 1
            if written % _PROGRESS_STEP == 0:
                if limit is not None:
                    progress.update(task, completed=written)
                else:
                    progress.update(task, completed=(tx.timestamp - start_at).total_seconds())
            if written % _FLUSH_EVERY == 0:
                _write_labels(label_handle, simulator.labels, label_counts)
        _write_labels(label_handle, simulator.labels, label_counts)
    logger.info("simulated %d transactions (seed %d)", written, seed)
    if not quiet:
        fraud = written - label_counts["legitimate"]
        console.print(
            f"{written:,} transactions, {fraud:,} fraudulent "
            f"({', '.join(f'{kind} {n:,}' for kind, n in sorted(label_counts.items()))})"
        )
