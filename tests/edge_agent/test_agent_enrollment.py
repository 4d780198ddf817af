"""Enrollment against the real control plane app: one-time token in, own credential out."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from edge_agent.control_plane import (
    CREDENTIALS_FILE,
    ControlPlaneClient,
    ControlPlaneError,
    Credentials,
    EnrollmentError,
    enroll,
)

BASE_URL = "http://testserver"


def _token(client: TestClient, headers: dict[str, str]) -> str:
    response = client.post(
        "/api/v1/enrollment-tokens", json={"labels": {"store": "s-17"}}, headers=headers
    )
    assert response.status_code == 201, response.text
    token: str = response.json()["token"]
    return token


def test_enrolls_once_then_acts_only_as_itself(
    client: TestClient, headers_for: Any, tmp_path: Path
) -> None:
    token = _token(client, headers_for("operator"))

    credentials = enroll(BASE_URL, token, name="pos-gateway-17", client=client)
    path = credentials.save(tmp_path / "state")

    assert path.name == CREDENTIALS_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    saved = json.loads(path.read_text())
    assert token not in path.read_text()  # the one-time token is spent, not kept
    assert saved["device_id"] == credentials.device_id
    assert Credentials.load(tmp_path / "state") == credentials
    assert credentials.mqtt_username == credentials.device_id

    device = ControlPlaneClient(credentials, client=client)
    assert device.whoami()["id"] == credentials.device_id
    device.heartbeat(model_version="1", health={"outbox_depth": 0})
    assert device.whoami()["model_version"] == "1"

    # Its credential opens nothing but the device's own routes.
    bearer = {"Authorization": f"Bearer {credentials.credential.get_secret_value()}"}
    assert client.get("/api/v1/devices", headers=bearer).status_code in (401, 403)
    assert client.post("/api/v1/enrollment-tokens", json={}, headers=bearer).status_code in (
        401,
        403,
    )

    # The token works once.
    with pytest.raises(EnrollmentError):
        enroll(BASE_URL, token, name="pos-gateway-18", client=client)


def test_refused_token_and_revoked_device(
    client: TestClient, headers_for: Any, tmp_path: Path
) -> None:
    with pytest.raises(EnrollmentError):
        enroll(BASE_URL, "not-a-token", name="pos-x", client=client)

    operator = headers_for("operator")
    credentials = enroll(BASE_URL, _token(client, operator), name="pos-y", client=client)
    device = ControlPlaneClient(credentials, client=client)
    revoked = client.post(f"/api/v1/devices/{credentials.device_id}/revoke", headers=operator)
    assert revoked.status_code == 200
    with pytest.raises(ControlPlaneError):
        device.whoami()


def test_credentials_file_is_tightened_when_too_open(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from pydantic import SecretStr

    credentials = Credentials(
        device_id="d",
        credential=SecretStr("secret"),
        control_plane_url="http://cp",
        mqtt_host="h",
        mqtt_port=1883,
        mqtt_tls=False,
        mqtt_username="d",
        heartbeat_interval_seconds=30,
        enrolled_at=datetime.now(UTC),
    )
    path = credentials.save(tmp_path)
    path.chmod(0o644)
    assert Credentials.load(tmp_path) == credentials
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "secret" not in repr(credentials)
