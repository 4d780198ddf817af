"""End to end with the real Mosquitto: outages, kill -9, restart; every anomaly once.

The agent runs as its own process (``python -m edge_agent run``) against a private
mosquitto with persistence; an in-test confirmer stores and confirms uploads the way
the control plane's ingest does. The expected anomalies are computed offline from the
same stream and model, so "every anomaly delivered" is an equality of sets.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edge_agent.pipeline import event_id_for, sampled
from edge_agent.protocol.messages import DeviceStatus
from edge_agent.protocol.topics import Channel, device_topic
from edge_agent.protocol.transaction import Transaction
from tests.edge_agent.support import (
    ROOT,
    AgentProcess,
    Confirmer,
    agent_config,
    expected_anomalies,
    jsonl,
    traffic,
    write_credentials,
)
from tests.processes import Mosquitto, free_port, wait_for, wait_for_port

pytestmark = pytest.mark.timeout(240)

UNREACHABLE_CONTROL_PLANE = "http://127.0.0.1:9"
SAMPLE_RATE = 0.02


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    mosquitto = Mosquitto(tmp_path / "mosquitto")
    mosquitto.start()
    yield mosquitto
    mosquitto.stop()


def expected_samples(
    device_id: str, transactions: list[Transaction], anomalies: set[str]
) -> set[str]:
    ids = {str(event_id_for(device_id, tx)) for tx in transactions if sampled(tx, SAMPLE_RATE)}
    return ids - anomalies


def lone_big_night_payment(suffix: str) -> Transaction:
    """A new card spending a lot at half past midnight: the fixture model flags it alone."""
    return Transaction(
        transaction_id=f"http-{suffix}",
        store_id=f"http-store-{suffix}",
        terminal_id=f"http-terminal-{suffix}",
        card_token=f"http-card-{suffix}",
        amount=4800.0,
        currency="EUR",
        merchant_category="5732",
        timestamp=datetime(2026, 1, 6, 0, 20, tzinfo=UTC),
        latitude=48.8566,
        longitude=2.3522,
    )


def retained_status(port: int, device_id: str) -> DeviceStatus:
    """The retained message on the device's status topic."""
    received: list[bytes] = []
    got = threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2)

    def on_connect(c: mqtt.Client, *args: object) -> None:
        c.subscribe(device_topic(device_id, Channel.STATUS), qos=1)

    def on_message(c: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        received.append(message.payload)
        got.set()

    client.on_connect = on_connect
    client.on_message = on_message
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        assert got.wait(20), "no retained status message"
    finally:
        client.disconnect()
        client.loop_stop()
    return DeviceStatus.model_validate_json(received[-1])


def test_broker_outage_mid_stream_delivers_every_anomaly_once(
    tmp_path: Path, broker: Mosquitto
) -> None:
    state_dir = tmp_path / "state"
    credentials = write_credentials(
        state_dir, mqtt_port=broker.port, control_plane_url=UNREACHABLE_CONTROL_PLANE
    )
    device_id = credentials.device_id
    http_port = free_port()
    config = agent_config(tmp_path / "agent.toml", state_dir=state_dir, http_port=http_port)
    transactions = traffic(6000)
    first, second = transactions[:3000], transactions[3000:]
    anomalies = expected_anomalies(device_id, transactions, "mlp-1")
    samples = expected_samples(device_id, transactions, anomalies)
    assert len(anomalies) > 100

    agent = AgentProcess(config, tmp_path / "agent.log", http_port, stdin=True)
    with Confirmer(broker.port) as confirmer:
        agent.start()
        try:
            agent.feed(jsonl(first))
            wait_for(
                lambda: (agent.status() or {}).get("scored") == len(first),
                timeout=60,
                what="the first half scored",
            )
            wait_for(lambda: confirmer.ids(Channel.ANOMALIES), timeout=30, what="first uploads")

            broker.stop()
            wait_for(
                lambda: not (agent.status() or {"mqtt": {"connected": True}})["mqtt"]["connected"],
                timeout=30,
                what="the agent to notice the outage",
            )
            agent.feed(jsonl(second))
            # Scoring goes on without the broker, from the stream and over HTTP.
            wait_for(
                lambda: (agent.status() or {}).get("scored") == len(transactions),
                timeout=60,
                what="the second half scored during the outage",
            )
            code, decision = agent.score(lone_big_night_payment("outage"))
            assert code == 200
            assert decision["flagged"] is True
            assert decision["model_version"] == "1"
            anomalies.add(str(event_id_for(device_id, lone_big_night_payment("outage"))))
            waiting = agent.status()
            assert waiting is not None
            assert waiting["outbox"]["depth"] > 0

            broker.start()
            wait_for(
                lambda: confirmer.ids(Channel.ANOMALIES) == anomalies,
                timeout=90,
                what="every anomaly to be delivered after the outage",
            )
            wait_for(
                lambda: confirmer.ids(Channel.SAMPLES) == samples,
                timeout=60,
                what="every sample to be delivered",
            )
            wait_for(
                lambda: (
                    (agent.status() or {}).get("outbox", {}).get("in_flight", 1) == 0
                    and agent.status()["outbox"]["depth"] <= 2
                ),  # type: ignore[index]
                timeout=60,
                what="the outbox to empty (telemetry keeps coming)",
            )
        finally:
            code = agent.terminate()
        assert code == 0, agent.log()

    assert confirmer.invalid == []
    assert confirmer.ids(Channel.ANOMALIES) == anomalies  # each stored once, by event id
    assert "agent stopped" in agent.log()
    final = confirmer.telemetry[-1]
    assert final.device_id == device_id
    assert sum(t.scored for t in confirmer.telemetry) >= 1
    assert retained_status(broker.port, device_id).online is False


def test_kill_9_then_restart_resumes_from_the_outbox(tmp_path: Path, broker: Mosquitto) -> None:
    state_dir = tmp_path / "state"
    credentials = write_credentials(
        state_dir, mqtt_port=broker.port, control_plane_url=UNREACHABLE_CONTROL_PLANE
    )
    device_id = credentials.device_id
    http_port = free_port()
    config = agent_config(tmp_path / "agent.toml", state_dir=state_dir, http_port=http_port)
    transactions = traffic(4000)
    stream = tmp_path / "stream.jsonl"
    stream.write_bytes(jsonl(transactions))
    anomalies = expected_anomalies(device_id, transactions, "mlp-1")

    first = AgentProcess(config, tmp_path / "first.log", http_port, input_file=stream)
    with Confirmer(broker.port) as confirmer:
        confirmer.confirming.clear()  # the control plane stores nothing yet
        first.start()
        wait_for(
            lambda: (first.status() or {}).get("scored") == len(transactions),
            timeout=60,
            what="the stream scored",
        )
        # An answer given over HTTP is a promise: its anomaly must survive kill -9.
        code, decision = first.score(lone_big_night_payment("kill"))
        assert (code, decision["flagged"]) == (200, True)
        anomalies.add(str(event_id_for(device_id, lone_big_night_payment("kill"))))
        wait_for(
            lambda: anomalies <= confirmer.ids(Channel.ANOMALIES),
            timeout=60,
            what="every anomaly sent at least once (unconfirmed)",
        )
        first.kill9()
        assert retained_status(broker.port, device_id).online is False  # the last will
        with closing(sqlite3.connect(state_dir / "outbox.sqlite3")) as db:
            waiting = {
                event_id
                for (event_id,) in db.execute(
                    "SELECT event_id FROM outbox WHERE channel = ?", ("anomalies",)
                )
            }
        assert waiting == anomalies  # every anomaly survived the kill, unconfirmed

        restarted_port = free_port()
        restarted_config = agent_config(
            tmp_path / "restarted.toml",
            state_dir=state_dir,
            http_port=restarted_port,
            bootstrap=None,
        )
        confirmer.stored.clear()
        confirmer.confirming.set()
        restarted = AgentProcess(restarted_config, tmp_path / "restarted.log", restarted_port)
        restarted.start()
        try:
            status = restarted.status()
            assert status is not None
            assert status["model_version"] == "1"  # loaded from its own state directory
            wait_for(
                lambda: confirmer.ids(Channel.ANOMALIES) == anomalies,
                timeout=90,
                what="the restarted agent to deliver the outbox",
            )
            assert (restarted.status() or {}).get("scored") == 0  # nothing was scored again
            assert retained_status(broker.port, device_id).online is True
        finally:
            assert restarted.terminate() == 0, restarted.log()

    assert confirmer.invalid == []
    assert json.loads(json.dumps(sorted(confirmer.ids(Channel.ANOMALIES)))) == sorted(anomalies)


def test_mqtt_3_1_1_with_the_embedded_profiles_broker(tmp_path: Path) -> None:
    """amqtt (the embedded profile's broker) speaks MQTT 3.1.1 only."""
    port = free_port()
    broker = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from server.core.embedded import run_mqtt_broker; "
            f"run_mqtt_broker('127.0.0.1', {port})",
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port)
        state_dir = tmp_path / "state"
        credentials = write_credentials(
            state_dir, mqtt_port=port, control_plane_url=UNREACHABLE_CONTROL_PLANE
        )
        http_port = free_port()
        config = agent_config(
            tmp_path / "agent.toml",
            state_dir=state_dir,
            http_port=http_port,
            extra='[mqtt]\nversion = "3.1.1"\n',
        )
        transactions = traffic(2000)
        stream = tmp_path / "stream.jsonl"
        stream.write_bytes(jsonl(transactions))
        anomalies = expected_anomalies(credentials.device_id, transactions, "mlp-1")
        agent = AgentProcess(config, tmp_path / "agent.log", http_port, input_file=stream)
        with Confirmer(port, version="3.1.1") as confirmer:
            agent.start()
            try:
                wait_for(
                    lambda: confirmer.ids(Channel.ANOMALIES) == anomalies,
                    timeout=90,
                    what="every anomaly delivered over MQTT 3.1.1",
                )
                wait_for(
                    lambda: (agent.status() or {}).get("outbox", {}).get("in_flight", 1) == 0,
                    timeout=60,
                    what="every confirmation to arrive",
                )
            finally:
                assert agent.terminate() == 0, agent.log()
        assert confirmer.invalid == []
    finally:
        broker.terminate()
        broker.wait(timeout=10)
