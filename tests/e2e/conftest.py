"""Browser tests: the built dashboard against the real app, in Debian's Chromium.

The app runs in a thread (uvicorn) on a free port, against the test database of
tests/conftest.py with a seeded fleet. Each test gets a fresh browser context; it
saves a screenshot to var/e2e-screenshots/ and fails on any browser console error
that it did not announce with ``console_errors.allow(...)``.
"""

from __future__ import annotations

import re
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from tests.processes import free_port

ROOT = Path(__file__).resolve().parents[2]
WEB_DIST = ROOT / "web" / "dist"
SCREENSHOTS = ROOT / "var" / "e2e-screenshots"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PASSWORD = "correct horse battery staple"
TIME_ZONE = "America/New_York"
DEVICE_COUNT = 120
ANOMALY_COUNT = 12
TELEMETRY_DEVICE = "pos-0007"
TELEMETRY_WINDOWS = 10
MODEL_FIXTURE = ROOT / "tests" / "edge_agent" / "fixtures" / "models" / "mlp-1" / "model.tflite"


def _chromium() -> str:
    for candidate in (
        "/usr/bin/chromium",
        shutil.which("chromium"),
        shutil.which("chromium-browser"),
    ):
        if candidate and Path(candidate).exists():
            return candidate
    pytest.fail(
        "Chromium is not installed. `make test` installs it when run as root; otherwise "
        "run `sudo apt-get install -y chromium` (Playwright's own browser download is not used)."
    )


@dataclass
class Fleet:
    """What the seeded database holds, for tests to compare the pages with."""

    users: dict[str, str]
    cluster_id: str
    cluster_name: str
    device_ids: dict[str, str] = field(default_factory=dict)
    # Seeded anomalies, newest last; all unlabelled.
    anomaly_ids: list[int] = field(default_factory=list)
    # Model label -> id: fraud-1 (stable) and fraud-2 (candidate, its child).
    model_ids: dict[str, str] = field(default_factory=dict)
    # Finished training runs, by what they show: "registered" (drift, fraud-2 passed the
    # gate) and "rejected" (schedule, failed the gate).
    training_run_ids: dict[str, str] = field(default_factory=dict)
    # The device with telemetry windows (its page's charts), and how many it has.
    telemetry_device: str = TELEMETRY_DEVICE
    telemetry_windows: int = TELEMETRY_WINDOWS


def _seed(session: Session) -> Fleet:
    from server.auth import service as auth_service
    from server.auth.schemas import UserCreate
    from server.clusters import service as clusters_service
    from server.clusters.orm import ClusterKind
    from server.clusters.schemas import ClusterCreate
    from server.common.actor import Actor, Role
    from server.core.db import utcnow
    from server.devices import service as devices_service
    from server.devices.orm import DeviceStatus
    from server.devices.schemas import EnrollmentTokenCreate, EnrollRequest

    seeder = Actor.system("e2e-seed")
    users = {"viewer": "vera", "operator": "otto", "admin": "ada"}
    for role, username in users.items():
        auth_service.create_user(
            session,
            actor=seeder,
            data=UserCreate(username=username, password=PASSWORD, role=Role(role)),
        )
    cluster = clusters_service.create_cluster(
        session,
        actor=seeder,
        data=ClusterCreate(name="store-eu-1", kind=ClusterKind.K3S_EDGE, region="eu-west-1"),
    )
    fleet = Fleet(users=users, cluster_id=str(cluster.id), cluster_name=cluster.name)
    now = utcnow()
    for number in range(1, DEVICE_COUNT + 1):
        in_cluster = number % 2 == 0
        issued = devices_service.create_enrollment_token(
            session,
            actor=seeder,
            data=EnrollmentTokenCreate(
                cluster_id=cluster.id if in_cluster else None,
                labels={"store": f"s-{number % 4}", "lane": str(number % 3)},
            ),
        )
        name = f"pos-{number:04d}"
        device = devices_service.enroll(
            session, token=issued.token, data=EnrollRequest(name=name), ip=None, request_id=None
        ).device
        # A fleet in mid-life: most on fraud-v3, some still on fraud-v2, a few new.
        device.model_version = "fraud-v3" if number <= 70 else "fraud-v2" if number <= 110 else None
        device.status = DeviceStatus.ONLINE if number % 5 else DeviceStatus.OFFLINE
        device.agent_version = "0.1.0"
        device.last_seen_at = now
        device.health = {"outbox_depth": number % 7, "model_loaded": device.model_version}
        fleet.device_ids[name] = str(device.id)
    session.flush()
    _seed_anomalies(session, fleet)
    _seed_telemetry(session, fleet)
    _seed_models(session, fleet)
    _seed_training_runs(session, fleet)
    return fleet


def _seed_anomalies(session: Session, fleet: Fleet) -> None:
    """Flagged events from three devices, five minutes apart, the newest a minute ago."""
    from datetime import timedelta

    from server.core.db import utcnow

    now = utcnow()
    for number in range(ANOMALY_COUNT):
        add_anomaly(session, fleet, number, now - timedelta(minutes=5 * (ANOMALY_COUNT - number)))


def add_anomaly(session: Session, fleet: Fleet, number: int, scored_at: datetime) -> int:
    """Store one flagged event the way ingest stores it; its id is added to the fleet."""
    import uuid
    from datetime import timedelta

    from edge_agent.features import N_FEATURES
    from server.anomalies import service as anomalies_service
    from server.anomalies.orm import EventKind, ScoredEvent

    name = f"pos-{(number % 3) * 2 + 2:04d}"
    event = ScoredEvent(
        kind=EventKind.ANOMALY,
        device_id=uuid.UUID(fleet.device_ids[name]),
        cluster_id=uuid.UUID(fleet.cluster_id),
        event_id=uuid.uuid4(),
        received_at=scored_at + timedelta(seconds=2),
        scored_at=scored_at,
        model_version="fraud-v3",
        feature_spec_version=1,
        features=anomalies_service.encode_features([0.0] * N_FEATURES),
        score=min(1.0, round(0.9 + number / 200, 3)),
        threshold=0.9,
        flagged=True,
        transaction_id=f"tx-{number:04d}",
        store_id=f"s-{number % 4}",
        terminal_id=f"t-{number % 3}",
        card_token=f"card-{number:04d}",
        amount=25.0 + number * 10,
        currency="EUR",
        merchant_category="5411",
        transaction_at=scored_at,
        latitude=52.37,
        longitude=4.89,
    )
    session.add(event)
    session.flush()
    fleet.anomaly_ids.append(event.id)
    return event.id


def _seed_telemetry(session: Session, fleet: Fleet) -> None:
    """Telemetry windows of one device, three minutes apart, the newest a minute ago; its
    outbox depth in the newest window is 1."""
    import uuid
    from datetime import timedelta

    from server.core.db import utcnow
    from server.ingest.orm import TelemetryWindow

    now = utcnow()
    for number in range(TELEMETRY_WINDOWS):
        sent_at = now - timedelta(minutes=1 + 3 * (TELEMETRY_WINDOWS - 1 - number))
        session.add(
            TelemetryWindow(
                device_id=uuid.UUID(fleet.device_ids[TELEMETRY_DEVICE]),
                cluster_id=None,
                event_id=uuid.uuid4(),
                sent_at=sent_at,
                received_at=sent_at + timedelta(seconds=1),
                window_seconds=300.0,
                agent_version="0.1.0",
                model_version="fraud-v3",
                feature_spec_version=1,
                scored=200,
                flagged=number % 4,
                inference_errors=0,
                model_load_failures=0,
                latency_p50_ms=2.0 + number / 10,
                latency_p95_ms=6.0 + number / 5,
                latency_p99_ms=9.0 + number / 5,
                score_histogram=[0] * 20,
                outbox={"depth": number % 4, "dropped_samples": 0, "dropped_anomalies": 0},
                last_update=None,
            )
        )
    session.flush()


def _seed_models(session: Session, fleet: Fleet) -> None:
    """Two versions of the fraud model through the registry, the second a child of the first."""
    from datetime import UTC, datetime

    from edge_agent.features import FEATURE_SPEC_VERSION
    from server.common.actor import Actor
    from server.registry import service as registry_service
    from server.registry.orm import ModelStage
    from server.registry.schemas import ModelMetadata

    model_bytes = MODEL_FIXTURE.read_bytes()
    seeder = Actor.system("e2e-seed")
    parent = None
    for version, metrics, snapshot in (
        (1, {"pr_auc": 0.81, "recall_at_1pct_fpr": 0.62}, "snap-2026-11-01"),
        (2, {"pr_auc": 0.86, "recall_at_1pct_fpr": 0.67, "brier": 0.04}, "snap-2026-12-01"),
    ):
        model = registry_service.register_model(
            session,
            actor=seeder,
            model_bytes=model_bytes,
            metadata=ModelMetadata(
                name="fraud",
                feature_spec_version=FEATURE_SPEC_VERSION,
                threshold=0.9 if version == 1 else 0.88,
                training_start=datetime(2026, 10, 1, tzinfo=UTC),
                training_end=datetime(2026, 11, version, tzinfo=UTC),
                training_rows=100_000 * version,
                metrics=metrics,
                parent_version_id=None if parent is None else parent.id,
                dataset_snapshot=snapshot,
                code_version=f"abc123{version}",
            ),
            source="training",
        )
        if parent is None:
            model.stage = ModelStage.STABLE
        parent = model
        fleet.model_ids[model.label] = str(model.id)
    session.flush()


def _seed_training_runs(session: Session, fleet: Fleet) -> None:
    """Two finished runs: drift fired on fraud-1's recall and fraud-2 passed the gate; a
    scheduled run a day earlier whose candidate the gate refused."""
    import uuid
    from datetime import timedelta

    from server.core.db import utcnow
    from server.training.gate import GateMargins, GateSide, judge
    from server.training.orm import RunState, RunTrigger, TrainingRun

    now = utcnow()
    margins = GateMargins(pr_auc=0.01, recall=0.02, false_positive_rate=0.01)
    stable = GateSide(pr_auc=0.81, recall_at_fpr=0.62, threshold=0.9, precision=0.7, recall=0.6)
    stable_id = fleet.model_ids["fraud-1"]
    for name, trigger, candidate, ago in (
        ("rejected", RunTrigger.SCHEDULE, (0.74, 0.55), timedelta(days=1)),
        ("registered", RunTrigger.DRIFT, (0.86, 0.67), timedelta(minutes=30)),
    ):
        verdict = judge(
            GateSide(
                pr_auc=candidate[0],
                recall_at_fpr=candidate[1],
                threshold=0.88,
                precision=0.72,
                recall=0.64,
            ),
            stable,
            margins=margins,
            test_rows=41_250,
            test_positives=388,
            stable_model_id=stable_id,
            stable_label="fraud-1",
        )
        evidence: dict[str, Any] = (
            {"schedule_hours": 24.0, "due_at": (now - ago).isoformat()}
            if trigger is RunTrigger.SCHEDULE
            else {
                "model_id": stable_id,
                "model_label": "fraud-1",
                "checked_at": (now - ago).isoformat(),
                "fired": ["recall"],
                "checks": [
                    {
                        "check": "recall",
                        "fired": True,
                        "evaluated": True,
                        "detail": "estimated recall 0.31 against 0.62 on the test slice",
                        "numbers": {"recall": 0.31, "baseline": 0.62},
                    },
                    {
                        "check": "flag_rate",
                        "fired": False,
                        "evaluated": True,
                        "detail": "flag rate 2.1% against 2.0% in the hours before",
                        "numbers": {},
                    },
                ],
            }
        )
        run = TrainingRun(
            trigger=trigger,
            evidence=evidence,
            requested_by="retraining",
            state=RunState.REGISTERED if verdict.passed else RunState.REJECTED,
            model_name="fraud",
            window_start=now - ago - timedelta(days=7),
            window_end=now - ago,
            snapshot_key=f"snapshots/fraud/{name}.npz",
            model_id=uuid.UUID(fleet.model_ids["fraud-2"]) if verdict.passed else None,
            gate=verdict.model_dump(mode="json"),
            reason=verdict.reason,
            created_at=now - ago,
            started_at=now - ago + timedelta(seconds=5),
            finished_at=now - ago + timedelta(minutes=2),
        )
        session.add(run)
        session.flush()
        fleet.training_run_ids[name] = str(run.id)


@pytest.fixture(scope="package")
def fleet(engine: Engine) -> Iterator[Fleet]:
    """Seed the test database once for the browser tests, and empty it afterwards."""
    from server.core.db import Base

    with Session(engine) as session:
        seeded = _seed(session)
        session.commit()
    yield seeded
    with engine.begin() as connection:
        for table in reversed(Base.metadata.sorted_tables):
            if table.name != "roles":
                connection.execute(table.delete())


@pytest.fixture(scope="package")
def live_server(fleet: Fleet) -> Iterator[str]:
    """The real app on a free port, serving the built dashboard."""
    if not (WEB_DIST / "index.html").is_file():
        pytest.fail(
            "web/dist is not built: run `make install` (or `npm --prefix web ci && "
            "npm --prefix web run build`)."
        )
    import uvicorn

    from server.app import create_app

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, name="e2e-uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("the app did not start for the browser tests")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    executable = _chromium()
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


class ConsoleErrors:
    """Console errors of the page; a test may allow the ones it provokes on purpose."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.allowed: list[re.Pattern[str]] = []

    def allow(self, pattern: str) -> None:
        self.allowed.append(re.compile(pattern))

    def unexpected(self) -> list[str]:
        return [e for e in self.seen if not any(p.search(e) for p in self.allowed)]


@pytest.fixture
def console_errors() -> ConsoleErrors:
    return ConsoleErrors()


@pytest.fixture
def page(
    browser: Any, live_server: str, console_errors: ConsoleErrors, request: pytest.FixtureRequest
) -> Iterator[Any]:
    context = browser.new_context(
        base_url=live_server,
        timezone_id=TIME_ZONE,
        locale="en-US",
        viewport={"width": 1280, "height": 860},
    )
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server)
    context.set_default_timeout(10_000)
    new_page = context.new_page()
    new_page.on(
        "console",
        lambda message: (
            console_errors.seen.append(message.text) if message.type == "error" else None
        ),
    )
    new_page.on("pageerror", lambda error: console_errors.seen.append(f"uncaught: {error}"))
    yield new_page
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    new_page.screenshot(path=str(SCREENSHOTS / f"{request.node.name}.png"), full_page=True)
    context.close()
    unexpected = console_errors.unexpected()
    if unexpected:
        pytest.fail(f"browser console errors: {unexpected}")


@pytest.fixture
def shot(page: Any, request: pytest.FixtureRequest) -> Any:
    """shot("step") saves an extra screenshot in the middle of a test."""

    def take(step: str) -> None:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{request.node.name}--{step}.png"
        page.screenshot(path=str(path), full_page=True)

    return take


@pytest.fixture
def sign_in(page: Any) -> Any:
    """sign_in("otto") signs in through the sign-in page and waits for the dashboard."""
    from playwright.sync_api import expect

    def sign_in_as(username: str, password: str = PASSWORD) -> None:
        page.goto("/sign-in")
        page.get_by_label("User name").fill(username)
        page.get_by_label("Password").fill(password)
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_test_id("account")).to_contain_text(username)

    return sign_in_as


@pytest.fixture
def advance_rollout() -> Any:
    """advance_rollout(id) does what the worker's rollouts.tick does for one running rollout."""
    import uuid

    from server.core.db import session_scope
    from server.rollouts import service as rollouts_service

    def advance(rollout_id: str) -> None:
        with session_scope() as session:
            rollouts_service.advance_by_id(session, uuid.UUID(rollout_id))

    return advance


@pytest.fixture
def api_as(live_server: str) -> Iterator[Any]:
    """api_as("vera") -> an httpx client of the live app signed in as that user."""
    import httpx

    clients: list[httpx.Client] = []

    def client_for(username: str) -> httpx.Client:
        client = httpx.Client(base_url=live_server, timeout=10)
        token = client.post(
            "/api/v1/auth/token", data={"username": username, "password": PASSWORD}
        ).json()["access_token"]
        client.headers["Authorization"] = f"Bearer {token}"
        clients.append(client)
        return client

    yield client_for
    for client in clients:
        client.close()
