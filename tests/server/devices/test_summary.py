from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from server.core.db import utcnow
from server.devices.orm import DeviceStatus

URL = "/api/v1/devices/summary"


def _set(device: Any, status: DeviceStatus, model_version: str | None) -> None:
    device.status = status
    device.model_version = model_version
    device.last_seen_at = utcnow()


def test_summary_counts_by_status_and_model_version(
    client: TestClient, headers_for: Any, make_device: Any, db_session: Session
) -> None:
    plan = [
        (DeviceStatus.ONLINE, "fraud-v2"),
        (DeviceStatus.ONLINE, "fraud-v2"),
        (DeviceStatus.OFFLINE, "fraud-v2"),
        (DeviceStatus.ONLINE, "fraud-v1"),
        (DeviceStatus.OFFLINE, None),
        (DeviceStatus.REVOKED, "fraud-v1"),
    ]
    for status, version in plan:
        device, _ = make_device()
        _set(device, status, version)
    db_session.flush()

    response = client.get(URL, headers=headers_for("viewer"))

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["total"] == 6
    assert body["by_status"] == {"online": 3, "offline": 2, "revoked": 1}
    # Revoked devices run nothing; the most used model comes first, unknown last.
    assert body["by_model_version"] == [
        {"model_version": "fraud-v2", "devices": 3, "online": 2},
        {"model_version": "fraud-v1", "devices": 1, "online": 1},
        {"model_version": None, "devices": 1, "online": 0},
    ]


def test_summary_of_an_empty_fleet(client: TestClient, headers_for: Any) -> None:
    body = client.get(URL, headers=headers_for("viewer")).json()
    assert body == {
        "total": 0,
        "by_status": {"online": 0, "offline": 0, "revoked": 0},
        "by_model_version": [],
    }


def test_summary_needs_a_token(client: TestClient) -> None:
    assert client.get(URL).status_code == 401


def test_device_ids_still_resolve_beside_the_summary(
    client: TestClient, headers_for: Any, make_device: Any
) -> None:
    """/devices/summary is declared before /devices/{device_id}; both keep working."""
    device, _ = make_device(name="pos-7")
    headers = headers_for("viewer")
    response = client.get(f"/api/v1/devices/{device.id}", headers=headers)
    assert response.status_code == 200
    assert response.json()["name"] == "pos-7"
    assert client.get("/api/v1/devices/not-a-uuid", headers=headers).status_code == 422
