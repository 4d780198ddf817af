from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from server.core.db import utcnow
from server.devices.orm import EnrollmentToken


def _new_enrollment_token(
    client: TestClient, headers: dict[str, str], **body: Any
) -> dict[str, Any]:
    response = client.post("/api/v1/enrollment-tokens", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return dict(response.json())


def _enroll(client: TestClient, token: str, name: str = "pos-1") -> Any:
    return client.post(
        "/api/v1/agent/enroll",
        json={"name": name, "agent_version": "0.1.0"},
        headers={"Authorization": f"Bearer {token}"},
    )


def test_enrollment_token_works_once(client: TestClient, headers_for: Any) -> None:
    created = _new_enrollment_token(client, headers_for("operator"), labels={"store": "s-17"})
    first = _enroll(client, created["token"])
    assert first.status_code == 201, first.text
    body = first.json()
    assert body["credential"].startswith("epd_")
    assert body["mqtt"]["username"] == body["device_id"]
    assert body["mqtt"]["topic_prefix"] == f"edgeplane/v1/devices/{body['device_id']}"
    second = _enroll(client, created["token"], name="pos-2")
    assert second.status_code == 401
    assert "already used" in second.json()["detail"]


def test_enrolled_device_gets_the_tokens_labels(client: TestClient, headers_for: Any) -> None:
    operator = headers_for("operator")
    created = _new_enrollment_token(client, operator, labels={"store": "s-17", "region": "eu"})
    device_id = _enroll(client, created["token"]).json()["device_id"]
    device = client.get(f"/api/v1/devices/{device_id}", headers=operator).json()
    assert device["labels"] == {"store": "s-17", "region": "eu"}
    assert device["status"] == "offline"


def test_expired_enrollment_token_is_refused(
    client: TestClient, headers_for: Any, db_session: Session
) -> None:
    created = _new_enrollment_token(client, headers_for("operator"))
    db_session.get_one(EnrollmentToken, uuid.UUID(created["id"])).expires_at = utcnow() - timedelta(
        minutes=1
    )
    db_session.flush()
    assert _enroll(client, created["token"]).status_code == 401


def test_revoked_enrollment_token_is_refused(client: TestClient, headers_for: Any) -> None:
    operator = headers_for("operator")
    created = _new_enrollment_token(client, operator)
    revoked = client.delete(f"/api/v1/enrollment-tokens/{created['id']}", headers=operator)
    assert revoked.status_code == 200
    assert _enroll(client, created["token"]).status_code == 401


def test_enroll_without_a_token_is_refused(client: TestClient, headers_for: Any) -> None:
    assert client.post("/api/v1/agent/enroll", json={"name": "x"}).status_code == 401
    user_token = headers_for("admin")
    assert (
        client.post("/api/v1/agent/enroll", json={"name": "x"}, headers=user_token).status_code
        == 401
    )


def test_enrollment_for_an_unknown_cluster_is_404(client: TestClient, headers_for: Any) -> None:
    response = client.post(
        "/api/v1/enrollment-tokens",
        json={"cluster_id": "00000000-0000-4000-8000-000000000000"},
        headers=headers_for("operator"),
    )
    assert response.status_code == 404


def test_device_acts_only_as_itself(client: TestClient, make_device: Any, headers_for: Any) -> None:
    device_a, credential_a = make_device()
    device_b, _ = make_device()
    headers = {"Authorization": f"Bearer {credential_a}"}
    beat = client.post(
        "/api/v1/agent/heartbeat",
        json={"model_version": "fraud-3", "health": {"ok": True}},
        headers=headers,
    )
    assert beat.status_code == 200, beat.text
    assert client.get("/api/v1/agent/self", headers=headers).json()["id"] == str(device_a.id)
    operator = headers_for("operator")
    a = client.get(f"/api/v1/devices/{device_a.id}", headers=operator).json()
    b = client.get(f"/api/v1/devices/{device_b.id}", headers=operator).json()
    assert (a["status"], a["model_version"]) == ("online", "fraud-3")
    assert (b["status"], b["model_version"]) == ("offline", None)
    assert client.get(f"/api/v1/devices/{device_b.id}", headers=headers).status_code == 403


def test_revoked_device_credential_stops_working(
    client: TestClient, make_device: Any, headers_for: Any
) -> None:
    device, credential = make_device()
    headers = {"Authorization": f"Bearer {credential}"}
    assert client.get("/api/v1/agent/self", headers=headers).status_code == 200
    revoked = client.post(f"/api/v1/devices/{device.id}/revoke", headers=headers_for("operator"))
    assert revoked.json()["status"] == "revoked"
    assert client.get("/api/v1/agent/self", headers=headers).status_code == 401


def test_device_list_filters_and_pages(
    client: TestClient, make_device: Any, headers_for: Any
) -> None:
    for index in range(7):
        make_device(name=f"pos-{index:02d}", store="s-1" if index % 2 else "s-2")
    viewer = headers_for("viewer")
    names: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 3, "label": "store=s-1"}
        if cursor:
            params["cursor"] = cursor
        page = client.get("/api/v1/devices", params=params, headers=viewer).json()
        names += [item["name"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert names == ["pos-01", "pos-03", "pos-05"]
    bad = client.get("/api/v1/devices", params={"cursor": "!!!"}, headers=viewer)
    assert bad.status_code == 422
    assert (
        client.get("/api/v1/devices", params={"label": "nokey"}, headers=viewer).status_code == 422
    )


def test_device_update_and_404(client: TestClient, make_device: Any, headers_for: Any) -> None:
    device, _ = make_device()
    operator = headers_for("operator")
    updated = client.patch(
        f"/api/v1/devices/{device.id}", json={"labels": {"lane": "3"}}, headers=operator
    )
    assert updated.json()["labels"] == {"lane": "3"}
    missing = client.get("/api/v1/devices/00000000-0000-4000-8000-000000000000", headers=operator)
    assert missing.status_code == 404
    extra = client.patch(f"/api/v1/devices/{device.id}", json={"color": "red"}, headers=operator)
    assert extra.status_code == 422
