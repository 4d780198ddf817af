"""The ``edgeplane`` command.

Imports are made inside each command, so that ``edgeplane agent`` works on a device
that has only the agent's light dependencies installed.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from edge_agent.cli import agent_app
from edge_agent.simulator.cli import simulate_app
from server.training.cli import train_app

if TYPE_CHECKING:
    from server.core.config import Settings

app = typer.Typer(
    name="edgeplane",
    help="EdgePlane: control plane for edge fraud-scoring fleets.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
admin_app = typer.Typer(help="Users and tokens.", no_args_is_help=True)
app.add_typer(admin_app, name="admin")
app.add_typer(simulate_app, name="simulate", help="Realistic POS traffic with labelled fraud.")
app.add_typer(agent_app, name="agent", help="The edge agent daemon (light install).")
app.add_typer(train_app, name="train", help="Train, evaluate and sign a fraud model.")
console = Console(stderr=True)

INITIAL_PASSWORD_FILE = "initial-admin-password"


def _settings() -> Settings:
    from pydantic import ValidationError

    from server.core.config import get_settings

    try:
        return get_settings()
    except ValidationError as exc:
        for error in exc.errors():
            console.print(f"[red]configuration error:[/red] {error['msg']}")
        raise typer.Exit(2) from exc


@app.command()
def migrate(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
) -> None:
    """Bring the database schema up to date (safe to run again)."""
    _settings()
    from server.core import migrations
    from server.core.db import get_engine

    migrations.upgrade(get_engine(), revision)
    console.print(f"database at {revision}")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(help="API processes (production).")] = 1,
    with_worker: Annotated[
        bool | None,
        typer.Option(
            help="Also run a Celery worker and beat. Default: on in the embedded profile."
        ),
    ] = None,
) -> None:
    """Run the API. The embedded profile also migrates, and runs its broker and worker."""
    settings = _settings()
    import uvicorn

    from server.core.embedded import ChildProcesses

    with ChildProcesses() as children:
        if settings.is_embedded:
            settings.data_dir.mkdir(parents=True, exist_ok=True)
            migrate("head")
            ensure_first_admin()
        if settings.run_embedded_broker:
            children.start("mqtt broker", "mqtt-broker")
        if with_worker if with_worker is not None else settings.is_embedded:
            children.start("worker", "worker", "--beat")
        if settings.is_embedded:
            children.start("ingest", "ingest")
        console.print(f"EdgePlane API on http://{host}:{port} (OpenAPI at /docs)")
        uvicorn.run(
            "server.app:create_app",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_config=None,
            proxy_headers=True,
        )


def ensure_first_admin() -> None:
    """On an empty database, create `admin` with a random password and say where it is."""
    from server.auth import service as auth_service
    from server.auth.schemas import UserCreate
    from server.common.actor import Actor, Role
    from server.core.db import session_scope

    settings = _settings()
    password_file = Path(settings.data_dir) / INITIAL_PASSWORD_FILE
    with session_scope() as session:
        if auth_service.list_users(session):
            if password_file.exists():
                console.print(f"sign in as admin; password in {password_file}")
            return
        password = secrets.token_urlsafe(12)
        auth_service.create_user(
            session,
            actor=Actor.system("first-start"),
            data=UserCreate(username="admin", password=password, role=Role.ADMIN),
        )
    password_file.write_text(password + "\n")
    password_file.chmod(0o600)
    console.print(
        f"[bold]first start: sign in as [green]admin[/green] with password "
        f"[green]{password}[/green][/bold] (also saved in {password_file})"
    )


@app.command()
def demo(
    devices: Annotated[int, typer.Option(min=1, max=50, help="Simulated points of sale.")] = 6,
    clusters: Annotated[int, typer.Option(min=1, max=3, help="Simulated K3s clusters.")] = 3,
    rate: Annotated[
        float, typer.Option(min=0.1, max=50, help="Transactions per second per device.")
    ] = 2.0,
    history: Annotated[
        str, typer.Option(help="Simulated past each device scores first, e.g. 6h.")
    ] = "3h",
    drift_after: Annotated[
        str, typer.Option(help="When the new fraud pattern starts, e.g. 5m, 90s.")
    ] = "5m",
    drift_rate: Annotated[
        float, typer.Option(min=0.0, max=0.3, help="Share of traffic that is the new fraud.")
    ] = 0.1,
    bad_model: Annotated[
        bool, typer.Option("--bad-model", help="Also roll out a model that flags everything.")
    ] = False,
    port: Annotated[int, typer.Option(help="Port of the API and dashboard.")] = 8000,
    data_dir: Annotated[
        Path, typer.Option(help="Scratch folder for the demo; emptied at each start.")
    ] = Path("var/demo"),
) -> None:
    """The whole loop on this machine: control plane, fleet, drift, retraining, rollouts."""
    from edge_agent.simulator.cli import parse_duration
    from server.demo import DemoOptions
    from server.demo import run as run_demo

    run_demo(
        DemoOptions(
            devices=devices,
            clusters=clusters,
            rate=rate,
            history=parse_duration(history),
            drift_after=parse_duration(drift_after),
            drift_rate=drift_rate,
            bad_model=bad_model,
            port=port,
            data_dir=data_dir,
        ),
        console,
    )


@app.command()
def worker(
    beat: Annotated[bool, typer.Option(help="Run the beat scheduler in this process too.")] = False,
    concurrency: Annotated[int, typer.Option(help="Worker processes.")] = 2,
    loglevel: Annotated[str, typer.Option()] = "INFO",
) -> None:
    """Run a Celery worker."""
    settings = _settings()
    from server.worker import celery_app

    argv = ["worker", f"--loglevel={loglevel}", f"--concurrency={concurrency}"]
    if beat:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        argv += ["--beat", f"--schedule={settings.data_dir / 'celerybeat-schedule'}"]
    celery_app.worker_main(argv)


@app.command("beat")
def beat_command(loglevel: Annotated[str, typer.Option()] = "INFO") -> None:
    """Run the Celery beat scheduler (one per deployment)."""
    settings = _settings()
    from server.worker import celery_app

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    celery_app.start(
        [
            "beat",
            f"--loglevel={loglevel}",
            f"--schedule={settings.data_dir / 'celerybeat-schedule'}",
        ]
    )


@app.command()
def ingest(
    metrics_port: Annotated[
        int | None, typer.Option(help="Serve Prometheus metrics on this port.")
    ] = None,
    client_id: Annotated[
        str | None,
        typer.Option(help="MQTT client id; stable per replica (default: from the settings)."),
    ] = None,
) -> None:
    """Store the devices' anomalies, samples and telemetry from MQTT (run one or more)."""
    settings = _settings()
    from server.core.db import get_sessionmaker
    from server.core.logging import configure_logging
    from server.ingest.consumer import IngestError, run

    configure_logging(settings)
    try:
        run(settings, get_sessionmaker(), client_id=client_id, metrics_port=metrics_port)
    except IngestError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc


@app.command("broker-config")
def broker_config(
    out: Annotated[
        Path | None,
        typer.Option(
            help="Write passwd and acl into this folder. Default: the files named by "
            "EDGEPLANE_MQTT__PASSWORD_FILE and EDGEPLANE_MQTT__ACL_FILE."
        ),
    ] = None,
) -> None:
    """Write Mosquitto's password file and ACL from the enrolled devices."""
    settings = _settings()
    from server.broker.tasks import sync_auth_files_now

    if out is not None:
        written = sync_auth_files_now(password_file=out / "passwd", acl_file=out / "acl")
    elif settings.mqtt.password_file or settings.mqtt.acl_file:
        written = sync_auth_files_now()
    else:
        console.print(
            "[red]say where: --out DIR, or set EDGEPLANE_MQTT__PASSWORD_FILE and "
            "EDGEPLANE_MQTT__ACL_FILE[/red]"
        )
        raise typer.Exit(2)
    for path in (written.password_file, written.acl_file):
        if path is not None:
            console.print(f"wrote {path}")
    console.print(f"{written.accounts} accounts" + ("" if written.changed else " (unchanged)"))


@app.command("mqtt-broker")
def mqtt_broker() -> None:
    """Run the embedded profile's MQTT 3.1.1 broker in the foreground."""
    settings = _settings()
    from server.core.embedded import run_mqtt_broker

    run_mqtt_broker(settings.mqtt.host, settings.mqtt_port)


@admin_app.command("create-user")
def create_user(
    username: Annotated[str, typer.Option(prompt=True)],
    password: Annotated[str, typer.Option(prompt=True, hide_input=True, confirmation_prompt=True)],
    role: Annotated[str, typer.Option(help="viewer, operator or admin.")] = "viewer",
    if_missing: Annotated[bool, typer.Option(help="Do nothing if the user exists.")] = False,
) -> None:
    """Create a user."""
    _settings()
    from pydantic import ValidationError

    from server.auth import service as auth_service
    from server.auth.schemas import UserCreate
    from server.common.actor import Actor
    from server.core.db import session_scope
    from server.core.errors import DomainError

    try:
        data = UserCreate.model_validate({"username": username, "password": password, "role": role})
    except ValidationError as exc:
        for error in exc.errors():
            console.print(f"[red]{'.'.join(map(str, error['loc']))}:[/red] {error['msg']}")
        raise typer.Exit(2) from exc
    with session_scope() as session:
        if if_missing and auth_service.get_user_by_username(session, username) is not None:
            console.print(f"user {username} exists")
            return
        try:
            auth_service.create_user(session, actor=Actor.system("cli"), data=data)
        except DomainError as exc:
            console.print(f"[red]{exc.detail}[/red]")
            raise typer.Exit(1) from exc
    console.print(f"created {role} {username}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
