"""The password file and ACL the control plane generates, enforced by a real Mosquitto."""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.reasoncodes import ReasonCode
from pydantic import SecretStr

from edge_agent.protocol.topics import Channel, device_topic, ingest_subscription
from server.broker.tasks import sync_auth_files_now
from server.common.actor import Actor
from server.core.config import get_settings
from server.core.db import session_scope
from server.devices import service as devices_service
from tests.processes import Mosquitto, wait_for
from tests.server.ingest.conftest import Broker, EnrolledDevice, ingest_settings, stored_keys
from tests.server.ingest.fleet import IngestProcess, batch_payload, make_event

NOT_AUTHORIZED = 0x87


class Probe:
    """A synchronous MQTT 5 client that reports the broker's reason codes."""

    def __init__(self, port: int, username: str, password: str) -> None:
        self.connack: ReasonCode | None = None
        self.pubacks: dict[int, ReasonCode] = {}
        self.subacks: dict[int, list[ReasonCode]] = {}
        self.received: list[tuple[str, bytes]] = []
        self.lock = threading.Lock()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"probe-{uuid.uuid4().hex[:8]}",
            protocol=MQTTProtocolVersion.MQTTv5,
            reconnect_on_failure=False,
        )
        self.client.username_pw_set(username, password)
        self.client.on_connect = self._on_connect
        self.client.on_publish = self._on_publish
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message
        self.client.connect_async("127.0.0.1", port, keepalive=10)
        self.client.loop_start()
        wait_for(lambda: self.connack is not None, timeout=20, what="a CONNACK")

    def _on_connect(
        self, client: Any, userdata: Any, flags: Any, rc: ReasonCode, props: Any
    ) -> None:
        self.connack = rc

    def _on_publish(self, client: Any, userdata: Any, mid: int, rc: ReasonCode, props: Any) -> None:
        with self.lock:
            self.pubacks[mid] = rc

    def _on_subscribe(
        self, client: Any, userdata: Any, mid: int, rcs: list[ReasonCode], props: Any
    ) -> None:
        with self.lock:
            self.subacks[mid] = rcs

    def _on_message(self, client: Any, userdata: Any, message: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.received.append((message.topic, message.payload))

    @property
    def refused(self) -> bool:
        assert self.connack is not None
        return bool(self.connack.is_failure)

    def publish(self, topic: str, payload: bytes) -> ReasonCode:
        mid = self.client.publish(topic, payload, qos=1).mid
        wait_for(lambda: mid in self.pubacks, timeout=20, what="a PUBACK")
        return self.pubacks[mid]

    def subscribe(self, topic: str) -> ReasonCode:
        _, mid = self.client.subscribe(topic, qos=1)
        assert mid is not None
        wait_for(lambda: mid in self.subacks, timeout=20, what="a SUBACK")
        return self.subacks[mid][0]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def accounts(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    mqtt_settings = get_settings().mqtt
    monkeypatch.setattr(mqtt_settings, "username", "edgeplane-control")
    monkeypatch.setattr(mqtt_settings, "password", SecretStr("control-password"))
    monkeypatch.setattr(mqtt_settings, "ingest_username", "edgeplane-ingest")
    monkeypatch.setattr(mqtt_settings, "ingest_password", SecretStr("ingest-password"))
    return {"edgeplane-control": "control-password", "edgeplane-ingest": "ingest-password"}


@pytest.fixture
def secured(
    enroll: Any,
    accounts: dict[str, str],
    mosquitto_factory: Callable[..., Mosquitto],
    tmp_path: Path,
) -> tuple[Mosquitto, list[EnrolledDevice]]:
    devices = enroll(2)
    auth = tmp_path / "auth"
    written = sync_auth_files_now(password_file=auth / "passwd", acl_file=auth / "acl")
    assert written.accounts == 4
    broker = mosquitto_factory(password_file=auth / "passwd", acl_file=auth / "acl")
    return broker, devices


def test_a_device_cannot_publish_or_read_under_another_devices_id(
    secured: tuple[Mosquitto, list[EnrolledDevice]],
) -> None:
    broker, (a, b) = secured
    ingest = Probe(broker.port, "edgeplane-ingest", "ingest-password")
    device = Probe(broker.port, a.id, a.credential)
    try:
        assert not ingest.refused
        assert not device.refused
        assert ingest.subscribe(ingest_subscription(Channel.ANOMALIES, shared=True)).value == 1
        # Mosquitto may grant a subscription; it checks read access on every delivery.
        for topic in (
            device_topic(a.id, Channel.CONFIRMATIONS),
            device_topic(b.id, Channel.CONFIRMATIONS),
            ingest_subscription(Channel.ANOMALIES, shared=False),
        ):
            device.subscribe(topic)

        own = batch_payload(a.id, [make_event(random.Random(1))])
        assert not device.publish(device_topic(a.id, Channel.ANOMALIES), own).is_failure
        forged = batch_payload(b.id, [make_event(random.Random(2))])
        refused = device.publish(device_topic(b.id, Channel.ANOMALIES), forged)
        assert refused.value == NOT_AUTHORIZED, refused

        for target in (b, a):
            topic = device_topic(target.id, Channel.CONFIRMATIONS)
            assert not ingest.publish(topic, target.id.encode()).is_failure
        wait_for(lambda: len(device.received) >= 1, timeout=20, what="the device's confirmation")
        wait_for(lambda: len(ingest.received) >= 1, timeout=20, what="the device's own upload")
        time.sleep(1.0)  # room for anything that should not arrive, to arrive
        assert device.received == [(device_topic(a.id, Channel.CONFIRMATIONS), a.id.encode())]
        assert ingest.received == [(device_topic(a.id, Channel.ANOMALIES), own)]
    finally:
        ingest.close()
        device.close()


def test_wrong_and_revoked_credentials_are_refused(
    secured: tuple[Mosquitto, list[EnrolledDevice]], tmp_path: Path
) -> None:
    broker, (a, b) = secured
    wrong = Probe(broker.port, a.id, b.credential)
    assert wrong.refused
    wrong.close()

    with session_scope() as session:
        devices_service.revoke_device(
            session, actor=Actor.system("test"), device_id=uuid.UUID(b.id)
        )
    sync_auth_files_now(
        password_file=tmp_path / "auth" / "passwd", acl_file=tmp_path / "auth" / "acl"
    )
    broker.reload()

    def revoked_is_refused() -> bool:
        probe = Probe(broker.port, b.id, b.credential)
        probe.close()
        return probe.refused

    # Mosquitto reloads the files on SIGHUP; new connections then use them.
    wait_for(revoked_is_refused, timeout=20, what="the revoked device to be refused")
    still = Probe(broker.port, a.id, a.credential)
    assert not still.refused
    still.close()


def test_ingest_works_under_the_generated_acl(
    secured: tuple[Mosquitto, list[EnrolledDevice]], run_consumer: Callable[..., Any]
) -> None:
    """The ingest account's shared subscription and its confirmations pass the ACL."""
    broker, (a, _) = secured
    settings = ingest_settings(Broker(port=broker.port, mqtt5=True))
    run_consumer(settings)
    device = Probe(broker.port, a.id, a.credential)
    try:
        assert device.subscribe(device_topic(a.id, Channel.CONFIRMATIONS)).value == 1
        event = make_event(random.Random(3))
        topic = device_topic(a.id, Channel.ANOMALIES)

        def confirmed() -> bool:
            device.publish(topic, batch_payload(a.id, [event]))
            time.sleep(0.5)
            return any(t.endswith("/confirmations") for t, _ in device.received)

        wait_for(confirmed, timeout=60, what="a confirmation through the ACL")
        assert (a.id, event.event_id) in stored_keys()
    finally:
        device.close()


def test_ingest_stops_with_an_error_when_the_broker_refuses_it(
    secured: tuple[Mosquitto, list[EnrolledDevice]], ingest_factory: Callable[..., IngestProcess]
) -> None:
    broker, _ = secured
    ingest = ingest_factory(
        broker.port,
        "5",
        EDGEPLANE_MQTT__INGEST_USERNAME="edgeplane-ingest",
        EDGEPLANE_MQTT__INGEST_PASSWORD="not-the-password",
    )
    assert ingest.process is not None
    wait_for(lambda: ingest.process.poll() is not None, timeout=60, what="ingest to give up")  # type: ignore[union-attr]
    assert ingest.process.returncode == 2, ingest.log()
    assert "refused" in ingest.log()
