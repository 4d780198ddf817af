"""``edgeplane agent``: enroll a device, run the daemon, score a file.

Imports stay light (no server code, nothing heavy at module level) so the command
works on a device with only the ``agent`` extra installed.
"""

from __future__ import annotations

import json
import logging
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

if TYPE_CHECKING:
    from edge_agent.config import AgentSettings
    from edge_agent.control_plane import Credentials

logger = logging.getLogger(__name__)

agent_app = typer.Typer(
    help="The edge agent: scores POS transactions on the device.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console(stderr=True)

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="TOML settings file; EDGEPLANE_AGENT_* variables override it.",
        envvar="EDGEPLANE_AGENT_CONFIG",
    ),
]
_ENROLL_RETRY_MAX = 60.0


def _configure_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    formatter = logging.Formatter("%(asctime)sZ %(levelname)s %(name)s %(message)s")
    formatter.converter = time.gmtime
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


def _settings(config: Path | None, **overrides: object) -> AgentSettings:
    from pydantic import ValidationError

    from edge_agent.config import load_settings

    try:
        return load_settings(config, **overrides)
    except (ValidationError, FileNotFoundError, ValueError) as exc:
        console.print(f"[red]configuration error:[/red] {exc}")
        raise typer.Exit(2) from exc


@agent_app.command()
def enroll(
    url: Annotated[str, typer.Option(help="Control plane base URL.")],
    token: Annotated[
        str,
        typer.Option(help="One-time enrollment token.", envvar="EDGEPLANE_AGENT_ENROLLMENT_TOKEN"),
    ],
    config: ConfigOption = None,
    state_dir: Annotated[Path | None, typer.Option(help="Where credentials are kept.")] = None,
    name: Annotated[str | None, typer.Option(help="Device name (default: host name).")] = None,
    force: Annotated[bool, typer.Option(help="Enroll again even if credentials exist.")] = False,
) -> None:
    """Spend a one-time token on this device's own credential (saved with mode 0600)."""
    from edge_agent.control_plane import ControlPlaneError, Credentials
    from edge_agent.control_plane import enroll as enroll_device

    overrides: dict[str, object] = {"control_plane_url": url}
    if state_dir is not None:
        overrides["state_dir"] = state_dir
    if name is not None:
        overrides["device_name"] = name
    settings = _settings(config, **overrides)
    existing = Credentials.load(settings.state_dir)
    if existing is not None and not force:
        console.print(f"already enrolled as device {existing.device_id} (use --force to redo)")
        return
    try:
        credentials = enroll_device(url, token, name=settings.device_name)
    except ControlPlaneError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc
    path = credentials.save(settings.state_dir)
    console.print(f"enrolled as device {credentials.device_id}; credentials in {path}")


def _credentials_for_run(settings: AgentSettings) -> Credentials:
    """Saved credentials, or enroll now with the configured token (retrying while offline)."""
    from edge_agent.control_plane import (
        ControlPlaneError,
        Credentials,
        EnrollmentError,
    )
    from edge_agent.control_plane import (
        enroll as enroll_device,
    )

    credentials = Credentials.load(settings.state_dir)
    if credentials is not None:
        return credentials
    token = settings.enrollment_token_value()
    if token is None or settings.control_plane_url is None:
        console.print(
            "[red]not enrolled:[/red] run `edgeplane agent enroll`, or set "
            "EDGEPLANE_AGENT_CONTROL_PLANE_URL and EDGEPLANE_AGENT_ENROLLMENT_TOKEN(_FILE)"
        )
        raise typer.Exit(2)
    delay = 2.0
    while True:
        try:
            credentials = enroll_device(
                settings.control_plane_url, token, name=settings.device_name
            )
            credentials.save(settings.state_dir)
            return credentials
        except EnrollmentError as exc:
            console.print(f"[red]{exc}[/red]")
            raise typer.Exit(2) from exc
        except ControlPlaneError as exc:
            logger.warning("cannot enroll yet (%s); retrying in %.0f s", exc, delay)
            time.sleep(delay)
            delay = min(delay * 2, _ENROLL_RETRY_MAX)


@agent_app.command()
def run(
    config: ConfigOption = None,
    input_: Annotated[
        str | None,
        typer.Option("--input", "-i", help="Also score JSON lines from this file, or - for stdin."),
    ] = None,
) -> None:
    """Run the daemon until SIGTERM: HTTP endpoint, stream inputs, outbox, model updates."""
    overrides: dict[str, object] = {}
    if input_ is not None:
        overrides["input"] = input_
    settings = _settings(config, **overrides)
    _configure_logging(settings.log_level)
    from edge_agent.daemon import run as run_daemon

    run_daemon(settings, _credentials_for_run(settings))


@agent_app.command()
def score(
    source: Annotated[
        Path | None, typer.Argument(help="JSON lines of transactions (default: stdin).")
    ] = None,
    config: ConfigOption = None,
    model: Annotated[
        Path | None,
        typer.Option(help="A signed artifact folder (default: the installed model)."),
    ] = None,
    key: Annotated[
        list[Path] | None, typer.Option(help="Trusted public key file (PEM); repeatable.")
    ] = None,
) -> None:
    """Score transactions and print one JSON decision per line; uploads nothing."""
    settings = _settings(config)
    _configure_logging("WARNING" if settings.log_level.upper() == "INFO" else settings.log_level)
    import os

    from edge_agent.daemon import trusted_keys
    from edge_agent.inputs import LineReader
    from edge_agent.pipeline import Decision, Scorer
    from edge_agent.protocol.artifact import load_public_key
    from edge_agent.updates import ModelManager, ModelStore

    keys = trusted_keys(settings) + [load_public_key(path.read_text()) for path in key or []]
    if model is None:
        installed = ModelStore(settings.state_dir / "models")
        current = installed.read_pointer().current
        if current is None:
            console.print("[red]no installed model; pass --model DIR[/red]")
            raise typer.Exit(2)
        model = installed.path(current)
    with tempfile.TemporaryDirectory(prefix="edgeplane-score-") as scratch:
        manager = ModelManager(
            ModelStore(Path(scratch)), public_keys=keys, max_batch=settings.scoring.max_batch
        )
        if not manager.install_from_directory(model, origin=str(model)):
            console.print(f"[red]{manager.last_update}[/red]")
            raise typer.Exit(1)
        scorer = Scorer(
            manager,
            outbox=None,
            policy=None,
            max_batch=settings.scoring.max_batch,
            max_queued=settings.scoring.max_queued_transactions,
            max_cards=settings.scoring.max_cards,
            max_terminals=settings.scoring.max_terminals,
        )
        out = sys.stdout
        lock = threading.Lock()

        def write(decisions: list[Decision] | None, error: BaseException | None) -> None:
            if decisions is None:
                return
            with lock:
                out.write("".join(json.dumps(d.as_dict()) + "\n" for d in decisions))

        fd = os.open(source, os.O_RDONLY) if source is not None else sys.stdin.fileno()
        reader = LineReader(fd, scorer, name=str(source or "stdin"), done=write)
        scorer.start()
        reader.start()
        reader.finished.wait()
        scorer.stop()
        out.flush()
        if reader.invalid:
            console.print(f"{reader.invalid} unreadable lines skipped")


@agent_app.command()
def status(config: ConfigOption = None) -> None:
    """Print the running agent's status (from its local HTTP endpoint)."""
    import httpx

    settings = _settings(config)
    host = "127.0.0.1" if settings.http.host in ("0.0.0.0", "::") else settings.http.host  # noqa: S104
    try:
        response = httpx.get(f"http://{host}:{settings.http.port}/v1/status", timeout=5)
    except httpx.HTTPError as exc:
        console.print(f"[red]the agent does not answer: {exc}[/red]")
        raise typer.Exit(1) from exc
    print(json.dumps(response.json(), indent=2))
