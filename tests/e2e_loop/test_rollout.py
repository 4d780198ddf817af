"""Rollouts with real parts: API, Celery worker and beat, ingest, Mosquitto, agents.

PostgreSQL (a fresh database of the run), Redis, S3 (moto), a Mosquitto of the test's
own with the password file and ACL the control plane generates, the API under uvicorn,
``edgeplane worker --beat`` ticking rollouts every second, ``edgeplane ingest``, and a
fleet of ``python -m edge_agent run`` processes fed continuous simulated streams. The
agents start with no model at all: whatever they run, the control plane assigned them
(retained MQTT message, REST polling as fallback, signed artifacts from the registry).

In order, on one fleet:

1. the first stable model (the mlp-1 fixture) is rolled out and promoted at once;
2. a good candidate (mlp-2) goes from candidate to stable through every step;
3. a bad candidate (mlp-1's bytes with threshold 0: it flags everything) is rolled back
   at its first step by the flag-rate check, and every canary device goes back to the
   stable model; the times are measured and written to var/rollout-e2e-timings.json;
4. another bad candidate, with one canary device killed after it installed the bad
   model and before the rollback: once restarted, it converges to the stable model.

Throughout, no device runs (or reports telemetry from) a model it was not assigned.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from pydantic import SecretStr
from sqlalchemy import Engine, select

from edge_agent.control_plane import Credentials
from edge_agent.control_plane import enroll as agent_enroll
from edge_agent.protocol.messages import DesiredState as DesiredStateMessage
from edge_agent.protocol.topics import Channel
from edge_agent.simulator import Simulator, SimulatorConfig
from server.auth import service as auth_service
from server.auth.schemas import UserCreate
from server.broker.tasks import sync_auth_files_now
from server.common.actor import Actor, Role
from server.core.config import get_settings
from server.core.db import session_scope
from server.devices import service as devices_service
from server.devices.orm import Device
from server.devices.schemas import EnrollmentTokenCreate
from server.ingest.orm import TelemetryWindow
from server.registry import service as registry_service
from server.registry.orm import ModelStage, ModelVersion
from server.rollouts import service as rollouts_service
from server.rollouts.orm import DesiredState
from tests.edge_agent.support import ROOT, AgentProcess, jsonl
from tests.factories import register_fixture_model
from tests.processes import Mosquitto, free_port, wait_for, wait_for_port
from tests.server.ingest.fleet import IngestProcess

pytestmark = [
    pytest.mark.timeout(900),
    pytest.mark.production_only,
    pytest.mark.skipif(
        os.environ.get("EDGEPLANE_TEST_PROFILE", "production") != "production",
        reason="needs PostgreSQL, Redis and Mosquitto (the production profile)",
    ),
]

N_AGENTS = 4
CONTROL_USER, CONTROL_PASSWORD = "edgeplane-control", "control-" + secrets.token_hex(8)
INGEST_USER, INGEST_PASSWORD = "edgeplane-ingest", "ingest-" + secrets.token_hex(8)
TIMINGS_FILE = ROOT / "var" / "rollout-e2e-timings.json"

SOAK = 5
GOOD_STEPS = [
    {"percent": 25, "soak_seconds": SOAK, "min_devices": 1},
    {"percent": 50, "soak_seconds": SOAK, "min_devices": 1},
    {"percent": 100, "soak_seconds": SOAK, "min_devices": 1},
]
BAD_STEPS = [
    {"percent": 50, "soak_seconds": SOAK, "min_devices": 1},
    {"percent": 100, "soak_seconds": SOAK, "min_devices": 1},
]
# A few seconds of traffic are enough to judge. The flag-rate band is wide: over a few
# hundred transactions the rate of one simulated store swings between 0 and 8 %, whatever
# the model. Latency gets slack too (the machine is shared). A model that flags
# everything fails regardless.
THRESHOLDS = {
    "min_scored": 200,
    "max_flag_rate_ratio": 4.0,
    "flag_rate_slack": 0.05,
    "max_flag_rate": 0.3,
    "latency_slack_ms": 20.0,
    "max_latency_p95_ratio": 3.0,
}


# The control plane's processes and the fleet


def isolated_redis_url(url: str) -> str:
    """Another database of the same Redis, so that no other test run's worker takes this
    run's tasks (or this run's worker theirs): they all use Celery's default queue."""
    base, _, db = url.rpartition("/")
    if not db.isdigit():
        return url
    return f"{base}/{14 if db != '14' else 13}"


@dataclass
class ServerProcess:
    """A control-plane process (``python -m ...``), its output in a log file."""

    name: str
    args: list[str]
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, *self.args],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its children (Celery's pool) go with it
            )

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def api_process(env: dict[str, str], port: int, log_path: Path) -> ServerProcess:
    process = ServerProcess(
        "api",
        [
            "-m",
            "uvicorn",
            "server.app:create_app",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-access-log",
        ],
        env,
        log_path,
    )
    process.start()
    wait_for_port(port, timeout=60, what=f"the API (see {log_path})")
    return process


def worker_process(env: dict[str, str], log_path: Path) -> ServerProcess:
    """``edgeplane worker --beat``: the rollout tick and the desired-state publisher."""
    process = ServerProcess(
        "worker",
        ["-m", "server.cli", "worker", "--beat", "--concurrency", "2", "--loglevel", "INFO"],
        env,
        log_path,
    )
    process.start()
    return process


def write_agent_config(
    path: Path, *, state_dir: Path, http_port: int, trusted_keys: list[str]
) -> Path:
    """No bootstrap model: an agent runs only what the control plane assigns it."""
    lines = [
        f'state_dir = "{state_dir}"',
        f"trusted_keys = {json.dumps(trusted_keys)}",
        "telemetry_interval_seconds = 1.0",
        "desired_poll_seconds = 1.0",
        "shutdown_flush_seconds = 2",
        'log_level = "INFO"',
        "[http]",
        f"port = {http_port}",
        "[outbox]",
        "resend_after_seconds = 2.0",
        "[scoring]",
        "sample_rate = 0.02",
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


@dataclass
class FleetAgent:
    """One device: its credentials, its agent process, and what its status showed."""

    index: int
    credentials: Credentials
    agent: AgentProcess
    seen: list[tuple[datetime, str | None]] = field(default_factory=list)

    @property
    def id(self) -> str:
        return self.credentials.device_id

    def model_version(self) -> str | None:
        """The model the agent runs now (None if it does not answer), noted in ``seen``."""
        if self.agent.process is None or self.agent.exited():
            return None
        status = self.agent.status()
        if status is None:
            return None
        version = status.get("model_version")
        if not self.seen or self.seen[-1][1] != version:
            self.seen.append((datetime.now(UTC), version))
        return version if isinstance(version, str) else None

    def versions_seen(self) -> set[str | None]:
        return {version for _, version in self.seen}


class Feeder:
    """Feeds every agent a continuous simulated stream at a modest rate (the machine is
    small); an agent that is down misses its share, as a store's terminals would fail
    over elsewhere."""

    def __init__(
        self, agents: list[FleetAgent], *, per_second: float = 25.0, chunk: int = 10
    ) -> None:
        self.agents = agents
        self.interval = chunk / per_second
        self.chunk = chunk
        self.fed: dict[str, int] = {a.id: 0 for a in agents}
        self._streams = {
            a.id: Simulator(
                SimulatorConfig(seed=100 + a.index, n_cards=800, n_stores=40, fraud_rate=0.05)
            ).stream()
            for a in agents
        }
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="feeder", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        next_at = time.monotonic()
        while not self._stop.is_set():
            for agent in self.agents:
                process = agent.agent.process
                if process is None or process.poll() is not None or process.stdin is None:
                    continue
                data = jsonl(islice(self._streams[agent.id], self.chunk))
                try:
                    process.stdin.write(data)
                    process.stdin.flush()
                except (BrokenPipeError, ValueError, OSError):
                    continue
                self.fed[agent.id] += self.chunk
            next_at += self.interval
            self._stop.wait(max(0.0, next_at - time.monotonic()))


class Api:
    """The control plane's REST API, as an operator uses it."""

    def __init__(self, url: str, token: str) -> None:
        self.client = httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30
        )

    def close(self) -> None:
        self.client.close()

    def post(self, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        response = self.client.post(f"/api/v1{path}", json=body)
        assert response.is_success, f"POST {path}: {response.status_code} {response.text}"
        result: dict[str, Any] = response.json()
        return result

    def get(self, path: str) -> dict[str, Any]:
        response = self.client.get(f"/api/v1{path}")
        assert response.is_success, f"GET {path}: {response.status_code} {response.text}"
        result: dict[str, Any] = response.json()
        return result

    def rollout(self, rollout_id: str) -> dict[str, Any]:
        return self.get(f"/rollouts/{rollout_id}")

    def timeline(self, rollout_id: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.get(f"/rollouts/{rollout_id}/timeline")["items"]
        return items


def retained_desired_states(
    port: int, username: str, password: str, device_ids: list[str], *, timeout: float = 20
) -> dict[str, DesiredStateMessage]:
    """The retained desired-state message of each device, as the broker holds it now."""
    found: dict[str, DesiredStateMessage] = {}
    lock = threading.Lock()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=MQTTProtocolVersion.MQTTv5)
    client.username_pw_set(username, password)

    def on_connect(client: mqtt.Client, *args: Any) -> None:
        client.subscribe(
            [(f"edgeplane/v1/devices/{d}/{Channel.DESIRED.value}", 1) for d in device_ids]
        )

    def on_message(client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        if not message.retain or not message.payload:
            return
        state = DesiredStateMessage.model_validate_json(message.payload)
        with lock:
            found[state.device_id] = state

    client.on_connect = on_connect
    client.on_message = on_message
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        wait_for(
            lambda: len(found) == len(device_ids),
            timeout=timeout,
            what="every device's retained desired state",
        )
    finally:
        client.disconnect()
        client.loop_stop()
    return found


# The test


def register(fixture: str, *, threshold: float | None = None) -> ModelVersion:
    """A fixture model into the registry (signed by the control plane's key)."""
    with session_scope() as session:
        return register_fixture_model(session, fixture=fixture, threshold=threshold)


def operator_token() -> str:
    with session_scope() as session:
        user = auth_service.create_user(
            session,
            actor=Actor.system("e2e"),
            data=UserCreate(
                username=f"operator-{secrets.token_hex(4)}",
                password="correct horse battery staple",
                role=Role.OPERATOR,
            ),
        )
        return auth_service.sign_in(session, user=user, ip="127.0.0.1", request_id=None).token


def stage_of(model_id: uuid.UUID) -> ModelStage:
    with session_scope() as session:
        return session.get_one(ModelVersion, model_id).stage


def reported_versions() -> dict[str, str | None]:
    """Device.model_version: what each device last reported in telemetry (via ingest)."""
    with session_scope() as session:
        return {str(d.id): d.model_version for d in session.scalars(select(Device))}


def desired_rows(rollout_id: str) -> set[str]:
    with session_scope() as session:
        return {
            str(device_id)
            for device_id in session.scalars(
                select(DesiredState.device_id).where(
                    DesiredState.rollout_id == uuid.UUID(rollout_id)
                )
            )
        }


def at(value: str) -> datetime:
    moment = datetime.fromisoformat(value)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def as_utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def logs(*processes: ServerProcess | IngestProcess) -> str:
    return "\n".join(f"--- {type(p).__name__}\n{p.log()[-6000:]}" for p in processes)


@pytest.fixture
def broker_accounts(monkeypatch: pytest.MonkeyPatch) -> None:
    """The control-plane and ingest MQTT accounts, as the deployment configures them."""
    mqtt_settings = get_settings().mqtt
    monkeypatch.setattr(mqtt_settings, "username", CONTROL_USER)
    monkeypatch.setattr(mqtt_settings, "password", SecretStr(CONTROL_PASSWORD))
    monkeypatch.setattr(mqtt_settings, "ingest_username", INGEST_USER)
    monkeypatch.setattr(mqtt_settings, "ingest_password", SecretStr(INGEST_PASSWORD))


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    auth = tmp_path / "auth"
    mosquitto = Mosquitto(
        tmp_path / "mosquitto", password_file=auth / "passwd", acl_file=auth / "acl"
    )
    yield mosquitto
    mosquitto.stop()


def test_rollouts_promote_a_good_model_and_roll_back_bad_ones(
    tmp_path: Path, committed_db: Engine, broker_accounts: None, broker: Mosquitto
) -> None:
    with contextlib.ExitStack() as stack:
        run(tmp_path, broker, stack)


def run(tmp_path: Path, broker: Mosquitto, stack: contextlib.ExitStack) -> None:
    # The registry: models signed with the control plane's key, which agents trust.
    stable_1 = register("mlp-1")
    good = register("mlp-2")
    bad_a = register("mlp-1", threshold=0.0)  # flags every transaction
    bad_b = register("mlp-1", threshold=0.0)
    with session_scope() as session:
        keys = registry_service.trusted_public_keys(session)
    labels = {m.id: m.label for m in (stable_1, good, bad_a, bad_b)}
    assert sorted(labels.values()) == ["fraud-1", "fraud-2", "fraud-3", "fraud-4"]

    # The control plane's processes.
    api_port = free_port()
    api_url = f"http://127.0.0.1:{api_port}"
    env = os.environ.copy() | {
        "EDGEPLANE_PUBLIC_URL": api_url,
        "EDGEPLANE_DATA_DIR": str(tmp_path / "server"),
        "EDGEPLANE_REDIS__URL": isolated_redis_url(os.environ["EDGEPLANE_REDIS__URL"]),
        "EDGEPLANE_MQTT__HOST": "127.0.0.1",
        "EDGEPLANE_MQTT__PORT": str(broker.port),
        "EDGEPLANE_MQTT__USERNAME": CONTROL_USER,
        "EDGEPLANE_MQTT__PASSWORD": CONTROL_PASSWORD,
        "EDGEPLANE_MQTT__INGEST_USERNAME": INGEST_USER,
        "EDGEPLANE_MQTT__INGEST_PASSWORD": INGEST_PASSWORD,
        "EDGEPLANE_ROLLOUTS__TICK_SECONDS": "1",
        "EDGEPLANE_TRAINING__SCHEDULE_HOURS": "0",
        "EDGEPLANE_TRAINING__DRIFT_CHECK_SECONDS": "86400",
    }
    # `edgeplane worker --beat` keeps its schedule there and does not create it.
    (tmp_path / "server").mkdir()
    api = api_process(env, api_port, tmp_path / "api.log")
    stack.callback(api.stop)
    worker = worker_process(env, tmp_path / "worker.log")
    stack.callback(worker.stop)
    ingest = IngestProcess(
        port=broker.port,
        client_id=f"e2e-rollout-ingest-{secrets.token_hex(4)}",
        mqtt_version="5",
        log_path=tmp_path / "ingest.log",
        extra_env={k: v for k, v in env.items() if k.startswith("EDGEPLANE_MQTT__")},
    )
    stack.callback(ingest.stop)

    # Devices enroll through the API; the broker gets the generated files.
    with session_scope() as session:
        tokens = [
            devices_service.create_enrollment_token(
                session, actor=Actor.system("e2e"), data=EnrollmentTokenCreate()
            ).token
            for _ in range(N_AGENTS)
        ]
    enrolled: list[Credentials] = [
        agent_enroll(api_url, token, name=f"pos-rollout-{i}") for i, token in enumerate(tokens)
    ]
    assert {(c.mqtt_port, c.control_plane_url) for c in enrolled} == {(broker.port, api_url)}
    auth = tmp_path / "auth"
    written = sync_auth_files_now(password_file=auth / "passwd", acl_file=auth / "acl")
    assert written.accounts == N_AGENTS + 2  # the devices, the control plane, the ingest
    broker.start()
    ingest.start()
    wait_for(
        lambda: ingest.metric("edgeplane_ingest_connected") == 1,
        timeout=60,
        what="ingest to connect (see ingest.log)",
    )

    operator = Api(api_url, operator_token())
    stack.callback(operator.close)

    def rollout(model: ModelVersion, steps: list[dict[str, Any]]) -> dict[str, Any]:
        created = operator.post(
            "/rollouts",
            {
                "model_id": str(model.id),
                "target": {"kind": "all"},
                "steps": steps,
                "thresholds": THRESHOLDS,
            },
        )
        assert created["state"] == "running", created
        return created

    def finished(rollout_id: str, timeout: float) -> dict[str, Any]:
        result: dict[str, Any] = {}

        def done() -> bool:
            result.update(operator.rollout(rollout_id))
            return bool(result["state"] != "running")

        try:
            wait_for(done, timeout=timeout, what=f"rollout {rollout_id} to finish")
        except AssertionError as exc:
            raise AssertionError(f"{exc}: {result}\n{logs(worker, api)}") from None
        return result

    # 1. The first stable model: a rollout promoted at once (never analysed: long soak).
    first = rollout(stable_1, [{"percent": 100, "soak_seconds": 3600, "min_devices": 1}])
    promoted = operator.post(f"/rollouts/{first['id']}/promote")
    assert promoted["state"] == "succeeded", promoted
    assert stage_of(stable_1.id) is ModelStage.STABLE

    # The fleet: agents with no model of their own, each with its own MQTT connection.
    fleet: list[FleetAgent] = []
    for index, enrolled_credentials in enumerate(enrolled):
        state_dir = tmp_path / f"agent-{index}"
        credentials = enrolled_credentials.model_copy(update={"heartbeat_interval_seconds": 3600})
        credentials.save(state_dir)
        http_port = free_port()
        config = write_agent_config(
            tmp_path / f"agent-{index}.toml",
            state_dir=state_dir,
            http_port=http_port,
            trusted_keys=keys,
        )
        agent = AgentProcess(config, tmp_path / f"agent-{index}.log", http_port, stdin=True)
        fleet.append(FleetAgent(index, credentials, agent))

    def stop_agents() -> None:
        for device in fleet:
            if device.agent.process is not None and not device.agent.exited():
                with contextlib.suppress(Exception):
                    device.agent.terminate()

    stack.callback(stop_agents)
    for device in fleet:
        device.agent.start()
    feeder = Feeder(fleet)
    feeder.start()
    stack.callback(feeder.stop)
    by_id = {device.id: device for device in fleet}

    def fleet_runs(label: str, devices: list[FleetAgent] | None = None) -> bool:
        return all(d.model_version() == label for d in devices or fleet)

    def fleet_reports(label: str) -> bool:
        reported = reported_versions()
        return all(reported.get(d.id) == label for d in fleet)

    wait_for(lambda: fleet_runs("fraud-1"), timeout=120, what="every agent on fraud-1")
    wait_for(lambda: fleet_reports("fraud-1"), timeout=60, what="telemetry from fraud-1")

    # 2. The good candidate, step by step to stable.
    good_rollout = rollout(good, GOOD_STEPS)
    outcome = finished(good_rollout["id"], timeout=300)
    assert outcome["state"] == "succeeded", outcome
    wait_for(lambda: fleet_runs("fraud-2"), timeout=60, what="every agent on fraud-2")
    wait_for(lambda: fleet_reports("fraud-2"), timeout=60, what="telemetry from fraud-2")
    assert stage_of(good.id) is ModelStage.STABLE
    assert stage_of(stable_1.id) is ModelStage.RETIRED
    events = operator.timeline(good_rollout["id"])
    kinds = [e["kind"] for e in events]
    assert [e["details"]["step"] for e in events if e["kind"] == "step_started"] == [0, 1, 2]
    assert kinds.count("analysis_passed") == 3, kinds
    assert kinds[0] == "started", kinds
    assert kinds[-1] == "promoted", kinds
    cohorts = [e["details"]["cohort"] for e in events if e["kind"] == "step_started"]
    assert cohorts == [1, 2, 4], cohorts

    # 3. A bad candidate: rolled back at the first step; every canary back on stable.
    bad_rollout = rollout(bad_a, BAD_STEPS)
    cohort_a = desired_rows(bad_rollout["id"])  # assigned with the rollout's creation
    assert len(cohort_a) == N_AGENTS // 2, cohort_a
    canaries_a = [by_id[d] for d in sorted(cohort_a)]
    state: dict[str, Any] = {}

    def all_back() -> bool:
        state.update(operator.rollout(bad_rollout["id"]))
        versions = [d.model_version() for d in fleet]  # noted for every device
        return state["state"] != "running" and all(
            v == "fraud-2" for d, v in zip(fleet, versions, strict=True) if d.id in cohort_a
        )

    try:
        wait_for(all_back, timeout=240, what="the bad rollout to end")
    except AssertionError as exc:
        raise AssertionError(f"{exc}: {state}\n{logs(worker, api)}") from None
    back_at = max(d.seen[-1][0] for d in canaries_a)
    assert state["state"] == "rolled_back", state
    assert state["current_step"] == 0, state
    assert "flag_rate" in (state["decision"] or ""), state
    events_a = operator.timeline(bad_rollout["id"])
    rolled_back = [e for e in events_a if e["kind"] == "rolled_back"]
    assert len(rolled_back) == 1, events_a
    assert [c["metric"] for c in rolled_back[0]["details"]["failed_checks"]] == ["flag_rate"]
    assert [e["details"]["step"] for e in events_a if e["kind"] == "step_started"] == [0]
    assert stage_of(bad_a.id) is ModelStage.RETIRED
    ran_bad = [d for d in canaries_a if "fraud-3" in d.versions_seen()]
    assert ran_bad, "no canary device ever ran the bad model"
    assigned_at = at(next(e["at"] for e in events_a if e["kind"] == "step_started"))
    decided_at = at(rolled_back[0]["at"])
    first_ran_at = min(t for d in ran_bad for t, v in d.seen if v == "fraud-3")
    timings = {
        "fleet": N_AGENTS,
        "canary_devices": len(canaries_a),
        "tick_seconds": 1,
        "soak_seconds": SOAK,
        "min_scored": THRESHOLDS["min_scored"],
        "transactions_per_second_per_device": 25,
        "first_assignment_at": assigned_at.isoformat(),
        "first_canary_running_bad_model_s": round((first_ran_at - assigned_at).total_seconds(), 2),
        "assignment_to_rollback_decision_s": round((decided_at - assigned_at).total_seconds(), 2),
        "assignment_to_last_canary_on_stable_s": round((back_at - assigned_at).total_seconds(), 2),
        "decision_to_last_canary_on_stable_s": round((back_at - decided_at).total_seconds(), 2),
        "decision": state["decision"],
    }

    # 4. Another bad candidate; one canary device is down during the rollback.
    bad_rollout_b = rollout(bad_b, BAD_STEPS)
    cohort_b = desired_rows(bad_rollout_b["id"])
    assert len(cohort_b) == N_AGENTS // 2, cohort_b
    canaries_b = [by_id[d] for d in sorted(cohort_b)]
    victims: list[FleetAgent] = []

    def a_canary_runs_it() -> bool:
        victims.extend(d for d in canaries_b if d.model_version() == "fraud-4")
        return bool(victims)

    wait_for(a_canary_runs_it, timeout=120, what="a canary device on fraud-4")
    victim = victims[0]
    victim.agent.kill9()  # gone before its telemetry on the bad model adds up
    killed_at = datetime.now(UTC)
    online = [d for d in canaries_b if d is not victim]
    assert operator.rollout(bad_rollout_b["id"])["state"] == "running", (
        "the rollback came before the canary device could be stopped"
    )
    outcome_b = finished(bad_rollout_b["id"], timeout=240)
    assert outcome_b["state"] == "rolled_back", outcome_b
    assert outcome_b["current_step"] == 0, outcome_b
    events_b = operator.timeline(bad_rollout_b["id"])
    decided_b = at(next(e["at"] for e in events_b if e["kind"] == "rolled_back"))
    assert decided_b > killed_at  # the victim missed the rollback
    wait_for(lambda: fleet_runs("fraud-2", online), timeout=60, what="online canaries back")
    with session_scope() as session:
        desired = session.get_one(DesiredState, uuid.UUID(victim.id))
        assert (desired.model_id, desired.rollout_id) == (good.id, None)
    assert stage_of(bad_b.id) is ModelStage.RETIRED
    time.sleep(2)  # the rollback is well in the past when the device comes back
    log_before = len(victim.agent.log())
    restarted_at = datetime.now(UTC)
    victim.agent.start()
    wait_for(lambda: victim.model_version() == "fraud-2", timeout=60, what="the victim back")
    converged_at = victim.seen[-1][0]
    for _ in range(25):  # and it stays there
        assert victim.model_version() == "fraud-2", victim.agent.log()[-3000:]
        time.sleep(0.2)
    # It came back on the bad model (its last one), then followed its desired state.
    assert "starting with model fraud-4" in victim.agent.log()[log_before:]
    timings["offline_device_restart_to_stable_s"] = round(
        (converged_at - restarted_at).total_seconds(), 2
    )

    # The end: the whole fleet on the stable model, as the agents, their telemetry and
    # the broker's retained messages say.
    wait_for(lambda: fleet_runs("fraud-2"), timeout=60, what="every agent on fraud-2")
    wait_for(lambda: fleet_reports("fraud-2"), timeout=60, what="telemetry from fraud-2")
    retained = retained_desired_states(
        broker.port, CONTROL_USER, CONTROL_PASSWORD, [d.id for d in fleet]
    )
    with session_scope() as session:
        generations = {
            str(row.device_id): row.generation for row in session.scalars(select(DesiredState))
        }
    for device in fleet:
        message = retained[device.id]
        assert message.model is not None, message
        assert message.model.version == "fraud-2", message
        assert message.generation == generations[device.id], (message, generations)

    # No device ever ran, or reported telemetry from, a model it was not assigned.
    allowed = {
        d.id: {None, "fraud-1", "fraud-2"}
        | ({"fraud-3"} if d.id in cohort_a else set())
        | ({"fraud-4"} if d.id in cohort_b else set())
        for d in fleet
    }
    for device in fleet:
        assert device.versions_seen() <= allowed[device.id], (device.id, device.seen)

    # Nor before: a device's telemetry on a model begins after the step that gave it.
    def ranked(rollout_id: str) -> list[str]:
        ids = [uuid.UUID(d.id) for d in fleet]
        ids.sort(key=lambda d: rollouts_service.cohort_rank(uuid.UUID(rollout_id), d))
        return [str(d) for d in ids]

    assert set(ranked(bad_rollout["id"])[: N_AGENTS // 2]) == cohort_a
    assert set(ranked(bad_rollout_b["id"])[: N_AGENTS // 2]) == cohort_b
    good_order = ranked(good_rollout["id"])
    step_times = [at(e["at"]) for e in events if e["kind"] == "step_started"]
    since: dict[tuple[str, str], datetime] = {}
    for step_at, size in zip(step_times, cohorts, strict=True):
        for device_id in good_order[:size]:
            since.setdefault((device_id, "fraud-2"), step_at)
    for device in fleet:
        since[(device.id, "fraud-1")] = at(first["created_at"])
        since[(device.id, "fraud-3")] = at(bad_rollout["created_at"])
        since[(device.id, "fraud-4")] = at(bad_rollout_b["created_at"])
    with session_scope() as session:
        windows = session.execute(
            select(
                TelemetryWindow.device_id, TelemetryWindow.model_version, TelemetryWindow.sent_at
            )
        ).all()
    assert windows
    for window_device, version, sent_at in windows:
        assert version in allowed[str(window_device)], (window_device, version)
        if version is not None:
            assigned = since[(str(window_device), version)]
            assert as_utc(sent_at) >= assigned, (window_device, version, sent_at, assigned)
    for device in fleet:
        log = device.agent.log()
        assert "Traceback" not in log, log[-5000:]
        assert "the broker refused" not in log, log[-5000:]
        assert "ignoring a" not in log, log[-5000:]
    assert "could not be advanced" not in worker.log(), worker.log()[-5000:]
    assert api.alive(), api.log()[-5000:]
    assert worker.alive(), worker.log()[-5000:]

    TIMINGS_FILE.parent.mkdir(parents=True, exist_ok=True)
    TIMINGS_FILE.write_text(json.dumps(timings, indent=2) + "\n")
    print("\nbad-model rollback timings:", json.dumps(timings, indent=2))
