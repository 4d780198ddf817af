from __future__ import annotations

import json
import threading
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from fastapi.testclient import TestClient
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from sqlalchemy import Engine

from edge_agent.features import FEATURE_SPEC_VERSION
from edge_agent.protocol.messages import DesiredState
from edge_agent.protocol.topics import Channel, device_topic
from server.common.actor import Actor
from server.core.config import get_settings
from server.core.db import session_scope
from server.registry import service as registry_service
from server.registry.schemas import ModelMetadata
from server.rollouts import service as rollouts_service
from server.rollouts.tasks import publish_desired
from tests.factories import enroll_device

MODEL = Path(__file__).resolve().parents[2] / "edge_agent" / "fixtures" / "models" / "mlp-1"
METADATA = ModelMetadata(
    feature_spec_version=FEATURE_SPEC_VERSION,
    threshold=0.7,
    training_start=datetime(2026, 1, 5, tzinfo=UTC),
    training_end=datetime(2026, 1, 12, tzinfo=UTC),
    training_rows=1000,
)


def _upload(client: TestClient, headers: dict[str, str]) -> dict[str, Any]:
    response = client.post(
        "/api/v1/models",
        files={"model": ("model.tflite", (MODEL / "model.tflite").read_bytes())},
        data={"metadata": METADATA.model_dump_json()},
        headers=headers,
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


def test_operator_pins_a_model_and_the_device_reads_it(
    client: TestClient, headers_for: Any, make_device: Any
) -> None:
    operator = headers_for("operator")
    model = _upload(client, operator)
    device, credential = make_device()
    agent = {"Authorization": f"Bearer {credential}"}

    before = client.get("/api/v1/agent/desired", headers=agent).json()
    assert (before["generation"], before["model"]) == (0, None)

    pinned = client.put(
        f"/api/v1/devices/{device.id}/desired", json={"model_id": model["id"]}, headers=operator
    )
    assert pinned.status_code == 200, pinned.text
    desired = DesiredState.model_validate(client.get("/api/v1/agent/desired", headers=agent).json())
    assert desired.device_id == str(device.id)
    assert desired.generation == 1
    assert desired.model is not None
    assert desired.model.version == model["label"]
    assert desired.model.sha256 == model["sha256"]
    assert desired.model.signature == model["signature"]
    assert desired.model.url.endswith(f"/api/v1/agent/models/{model['id']}/files/model.tflite")
    path = desired.model.url.split("://", 1)[1].split("/", 1)[1]
    assert client.get(f"/{path}", headers=agent).content == (MODEL / "model.tflite").read_bytes()

    again = client.put(
        f"/api/v1/devices/{device.id}/desired", json={"model_id": model["id"]}, headers=operator
    )
    assert again.json()["generation"] == 1, "an unchanged assignment is not a new generation"
    cleared = client.put(f"/api/v1/devices/{device.id}/desired", json={}, headers=operator)
    assert (cleared.json()["generation"], cleared.json()["model"]) == (2, None)


def test_unknown_model_or_device_is_404(
    client: TestClient, headers_for: Any, make_device: Any
) -> None:
    operator = headers_for("operator")
    device, _ = make_device()
    missing_model = client.put(
        f"/api/v1/devices/{device.id}/desired",
        json={"model_id": str(uuid.uuid4())},
        headers=operator,
    )
    assert missing_model.status_code == 404
    missing_device = client.get(f"/api/v1/devices/{uuid.uuid4()}/desired", headers=operator)
    assert missing_device.status_code == 404


def test_desired_state_is_published_retained(committed_db: Engine) -> None:
    actor = Actor.system("test")
    with session_scope() as session:
        device = enroll_device(session, name="pos-r").device
        model = registry_service.register_model(
            session,
            actor=actor,
            model_bytes=(MODEL / "model.tflite").read_bytes(),
            metadata=METADATA,
            source="test",
        )
        rollouts_service.assign_model(
            session, actor=actor, device_ids=[device.id], model_id=model.id
        )
        device_id, label = device.id, model.label

    assert publish_desired(device_ids=[str(device_id)]) == 1

    settings = get_settings()
    received: list[bytes] = []
    arrived = threading.Event()
    protocol = (
        MQTTProtocolVersion.MQTTv311 if settings.run_embedded_broker else MQTTProtocolVersion.MQTTv5
    )
    reader = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=protocol)

    def on_message(_: mqtt.Client, __: Any, message: mqtt.MQTTMessage) -> None:
        received.append(message.payload)
        arrived.set()

    reader.on_message = on_message
    reader.connect(settings.mqtt.host, settings.mqtt_port)
    reader.subscribe(device_topic(str(device_id), Channel.DESIRED), qos=1)
    reader.loop_start()
    try:
        assert arrived.wait(timeout=30), "no retained desired state arrived"
    finally:
        reader.loop_stop()
        reader.disconnect()
    message = DesiredState.model_validate(json.loads(received[0]))
    assert message.generation == 1
    assert message.model is not None
    assert message.model.version == label
