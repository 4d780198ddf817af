"""The delivery loop with real parts: agents -> Mosquitto -> ``edgeplane ingest`` -> PostgreSQL.

Devices enroll through the control plane's API (the agent's own enrollment client
against the real app), the broker's password file and ACL are the ones the control
plane generates for them, the agents are ``python -m edge_agent run`` processes scoring
simulated streams with the fixture model, and the ingest is ``edgeplane ingest``. Midway
the ingest is killed with SIGKILL and restarted, and so is the broker. In the end every
anomaly the agents produced (computed offline from the same streams and model) is in
``scored_events`` exactly once, every outbox is empty, and nothing was dead-lettered.
"""

from __future__ import annotations

import random
import secrets
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import Engine, func, select

from edge_agent.control_plane import Credentials
from edge_agent.control_plane import enroll as agent_enroll
from edge_agent.protocol.topics import Channel, device_topic
from edge_agent.protocol.transaction import Transaction
from edge_agent.simulator import SimulatorConfig
from server.anomalies.orm import EventKind, ScoredEvent
from server.broker.tasks import sync_auth_files_now
from server.common.actor import Actor
from server.core.config import get_settings
from server.core.db import session_scope
from server.devices import service as devices_service
from server.devices.schemas import EnrollmentTokenCreate
from server.ingest.orm import DeadLetter, TelemetryWindow
from tests.edge_agent.support import (
    AgentProcess,
    agent_config,
    expected_anomalies,
    jsonl,
    traffic,
)
from tests.processes import Mosquitto, free_port, wait_for
from tests.server.ingest.fleet import IngestProcess, batch_payload, make_event
from tests.server.ingest.test_broker_acl import NOT_AUTHORIZED, Probe

pytestmark = pytest.mark.timeout(300)

N_AGENTS = 3
N_TRANSACTIONS = 2400  # per agent, fed in three parts
INGEST_USER, INGEST_PASSWORD = "edgeplane-ingest", "ingest-" + secrets.token_hex(8)
UNREACHABLE_CONTROL_PLANE = "http://127.0.0.1:9"


@dataclass
class Device:
    credentials: Credentials
    agent: AgentProcess
    transactions: list[Transaction]
    anomalies: set[str]

    @property
    def id(self) -> str:
        return self.credentials.device_id


def enroll_through_the_api(count: int) -> list[Credentials]:
    """Tokens from the service, enrollment by the agent's client against the real app."""
    from server.app import create_app

    with session_scope() as session:
        tokens = [
            devices_service.create_enrollment_token(
                session, actor=Actor.system("e2e"), data=EnrollmentTokenCreate()
            ).token
            for _ in range(count)
        ]
    with TestClient(create_app()) as client:
        return [
            agent_enroll(str(client.base_url), token, name=f"pos-e2e-{i}", client=client)
            for i, token in enumerate(tokens)
        ]


def stored() -> list[tuple[str, str, EventKind]]:
    with session_scope() as session:
        rows = session.execute(
            select(ScoredEvent.device_id, ScoredEvent.event_id, ScoredEvent.kind)
        ).all()
    return [(str(device_id), str(event_id), kind) for device_id, event_id, kind in rows]


def stored_anomalies() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for device_id, event_id, kind in stored():
        if kind is EventKind.ANOMALY:
            found.setdefault(device_id, set()).add(event_id)
    return found


def handed_to_the_broker(device: Device, scored: int) -> bool:
    """Everything scored so far is sent and PUBACKed (and not yet confirmed)."""
    status = device.agent.status() or {}
    outbox, mqtt = status.get("outbox", {}), status.get("mqtt", {})
    return (
        status.get("scored") == scored
        and mqtt.get("connected") is True
        and mqtt.get("unacknowledged") == 0
        and outbox.get("in_flight") == outbox.get("depth")
    )


def telemetry_senders() -> set[str]:
    with session_scope() as session:
        return {str(d) for d in session.scalars(select(TelemetryWindow.device_id).distinct())}


def dead_letters() -> int:
    with session_scope() as session:
        return int(session.scalar(select(func.count()).select_from(DeadLetter)) or 0)


@pytest.fixture
def broker_accounts(monkeypatch: pytest.MonkeyPatch) -> None:
    """The ingest's MQTT account, as the deployment configures it."""
    mqtt_settings = get_settings().mqtt
    monkeypatch.setattr(mqtt_settings, "ingest_username", INGEST_USER)
    monkeypatch.setattr(mqtt_settings, "ingest_password", SecretStr(INGEST_PASSWORD))


@dataclass
class UnsavedMosquitto(Mosquitto):
    """Saves its state on a clean shutdown only, so a SIGKILL loses every message it has
    acknowledged and not yet delivered. Production saves every 60 s
    (deploy/mosquitto/mosquitto.conf) and loses up to a minute; the helper's 1 s would
    lose only the last second's, which a test cannot aim at."""

    def config(self) -> str:
        return super().config().replace("autosave_interval 1\n", "autosave_interval 3600\n")


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    auth = tmp_path / "auth"
    mosquitto = UnsavedMosquitto(
        tmp_path / "mosquitto", password_file=auth / "passwd", acl_file=auth / "acl"
    )
    yield mosquitto
    mosquitto.stop()


@pytest.fixture
def ingest(tmp_path: Path, broker: Mosquitto) -> Iterator[IngestProcess]:
    process = IngestProcess(
        port=broker.port,
        client_id=f"e2e-ingest-{secrets.token_hex(4)}",  # stable across its restart
        mqtt_version="5",
        log_path=tmp_path / "ingest.log",
        extra_env={
            "EDGEPLANE_MQTT__INGEST_USERNAME": INGEST_USER,
            "EDGEPLANE_MQTT__INGEST_PASSWORD": INGEST_PASSWORD,
        },
    )
    yield process
    process.stop()


def test_agents_to_ingest_through_crashes_store_every_anomaly_once(
    tmp_path: Path,
    committed_db: Engine,
    broker_accounts: None,
    broker: Mosquitto,
    ingest: IngestProcess,
) -> None:
    # Enrollment, then the broker's files from the database.
    enrolled = enroll_through_the_api(N_AGENTS)
    assert all(c.mqtt_username == c.device_id for c in enrolled)
    auth = tmp_path / "auth"
    written = sync_auth_files_now(password_file=auth / "passwd", acl_file=auth / "acl")
    assert written.accounts == N_AGENTS + 1  # the devices and the ingest
    broker.start()

    devices: list[Device] = []
    for index, enrolled_credentials in enumerate(enrolled):
        state_dir = tmp_path / f"agent-{index}"
        credentials = enrolled_credentials.model_copy(
            update={
                "mqtt_port": broker.port,
                "control_plane_url": UNREACHABLE_CONTROL_PLANE,
                "heartbeat_interval_seconds": 3600,
            }
        )
        credentials.save(state_dir)
        http_port = free_port()
        config = agent_config(
            tmp_path / f"agent-{index}.toml", state_dir=state_dir, http_port=http_port
        )
        # Telemetry flows too, but not so often that the outbox is never empty.
        config.write_text(
            config.read_text().replace(
                "telemetry_interval_seconds = 1.0", "telemetry_interval_seconds = 4.0"
            )
        )
        transactions = traffic(
            N_TRANSACTIONS,
            SimulatorConfig(seed=11 + index, n_cards=800, n_stores=40, fraud_rate=0.05),
        )
        anomalies = expected_anomalies(credentials.device_id, transactions, "mlp-1")
        assert len(anomalies) > 20
        agent = AgentProcess(config, tmp_path / f"agent-{index}.log", http_port, stdin=True)
        devices.append(Device(credentials, agent, transactions, anomalies))

    ingest.start()
    wait_for(
        lambda: ingest.metric("edgeplane_ingest_connected") == 1,
        timeout=60,
        what="ingest to connect (see ingest.log)",
    )

    # The ACL is in force: a device may not publish under another device's id.
    a, b = devices[0], devices[1]
    forged = make_event(random.Random(7))
    probe = Probe(broker.port, a.id, a.credentials.credential.get_secret_value())
    try:
        assert not probe.refused
        refused = probe.publish(
            device_topic(b.id, Channel.ANOMALIES), batch_payload(b.id, [forged])
        )
        assert refused.value == NOT_AUTHORIZED, refused
    finally:
        probe.close()
    impostor = Probe(broker.port, a.id, b.credentials.credential.get_secret_value())
    impostor.close()
    assert impostor.refused

    def fed(part: int) -> int:
        return N_TRANSACTIONS * part // 3

    try:
        for device in devices:
            device.agent.start()
            device.agent.feed(jsonl(device.transactions[: fed(1)]))

        # 1. Ingest dies (SIGKILL) while the first part is being delivered.
        wait_for(
            lambda: len(stored_anomalies()) == N_AGENTS,
            timeout=60,
            what="first anomalies of every agent stored",
        )
        ingest.kill()

        # 2. The second part reaches the broker, which acknowledges it and holds it for
        # the ingest's session; then the broker dies (SIGKILL) before saving it.
        for device in devices:
            device.agent.feed(jsonl(device.transactions[fed(1) : fed(2)]))
        wait_for(
            lambda: all(handed_to_the_broker(d, fed(2)) for d in devices),
            timeout=60,
            what="the second part scored and acknowledged by the broker",
        )
        broker.kill()
        broker.start()
        ingest.start()  # the same client id as before
        wait_for(
            lambda: ingest.metric("edgeplane_ingest_connected") == 1,
            timeout=60,
            what="ingest to reconnect (see ingest.log)",
        )
        for device in devices:
            device.agent.feed(jsonl(device.transactions[fed(2) :]))
        wait_for(
            lambda: all((d.agent.status() or {}).get("scored") == N_TRANSACTIONS for d in devices),
            timeout=60,
            what="everything scored",
        )

        # 3. Everything arrives, once, and every outbox empties on confirmations.
        expected = {d.id: d.anomalies for d in devices}
        wait_for(
            lambda: stored_anomalies() == expected,
            timeout=120,
            what="every anomaly stored",
        )

        def outboxes_empty() -> bool:
            for device in devices:
                status = device.agent.status() or {}
                outbox = status.get("outbox", {})
                if outbox.get("depth") != 0 or outbox.get("in_flight") != 0:
                    return False
            return True

        wait_for(outboxes_empty, timeout=60, what="every outbox to empty")
        for device in devices:
            status = device.agent.status()
            assert status is not None
            assert status["outbox"]["dropped_anomalies"] == 0
            assert status["mqtt"]["connected"] is True
    finally:
        codes = [d.agent.terminate() for d in devices if d.agent.process is not None]
    assert codes == [0] * N_AGENTS, "\n".join(d.agent.log() for d in devices)

    rows = stored()
    keys = Counter((device_id, event_id) for device_id, event_id, _ in rows)
    assert [key for key, n in keys.items() if n > 1] == []  # exactly once
    assert stored_anomalies() == {d.id: d.anomalies for d in devices}
    assert {device_id for device_id, _, _ in rows} == {d.id for d in devices}
    assert (b.id, str(forged.event_id)) not in keys  # the forged upload never got in
    assert dead_letters() == 0, ingest.log()
    assert telemetry_senders() == {d.id for d in devices}
    for device in devices:
        log = device.agent.log()
        # Every publish (status, uploads) and subscription (desired, confirmations) of the
        # agent passed the ACL, and every confirmation was one the agent accepts.
        assert "the broker refused" not in log, log
        assert "ignoring a" not in log, log
    assert "Traceback" not in ingest.log(), ingest.log()
