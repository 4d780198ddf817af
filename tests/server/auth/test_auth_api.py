from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from server.auth.orm import ApiToken
from server.core.db import utcnow

PASSWORD = "correct horse battery staple"


def login(client: TestClient, username: str, password: str = PASSWORD) -> Any:
    return client.post("/api/v1/auth/token", data={"username": username, "password": password})


def test_login_issues_a_session_token(client: TestClient, make_user: Any) -> None:
    user = make_user("operator")
    response = login(client, user.username)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["access_token"].startswith("eps_")
    assert body["role"] == "operator"
    me = client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.status_code == 200
    assert me.json()["name"] == user.username


def test_wrong_password_and_unknown_user_are_refused_alike(
    client: TestClient, make_user: Any
) -> None:
    user = make_user()
    wrong = login(client, user.username, "not the password at all")
    unknown = login(client, "nobody-here", PASSWORD)
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json()["detail"] == unknown.json()["detail"]


def test_deactivated_user_cannot_sign_in(
    client: TestClient, make_user: Any, headers_for: Any
) -> None:
    user = make_user()
    admin = headers_for("admin")
    assert (
        client.patch(
            f"/api/v1/users/{user.id}", json={"is_active": False}, headers=admin
        ).status_code
        == 200
    )
    assert login(client, user.username).status_code == 401


def test_login_is_rate_limited(client: TestClient, make_user: Any) -> None:
    user = make_user()
    statuses = [login(client, user.username, "wrong password!!").status_code for _ in range(5)]
    assert statuses == [401] * 5
    limited = login(client, user.username)  # even the right password waits now
    assert limited.status_code == 429
    assert "too many" in limited.json()["detail"]


def test_logout_revokes_the_session(client: TestClient, make_user: Any) -> None:
    user = make_user()
    token = login(client, user.username).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    assert client.post("/api/v1/auth/logout", headers=headers).status_code == 204
    refused = client.get("/api/v1/auth/me", headers=headers)
    assert refused.status_code == 401
    assert "revoked" in refused.json()["detail"]


def test_api_token_is_shown_once_and_works(client: TestClient, headers_for: Any) -> None:
    operator = headers_for("operator")
    created = client.post(
        "/api/v1/tokens",
        json={"name": "billing", "role": "viewer", "expires_in_days": 30},
        headers=operator,
    )
    assert created.status_code == 201, created.text
    token = created.json()["token"]
    assert token.startswith("ept_")
    listed = client.get("/api/v1/tokens", headers=operator).json()["items"]
    assert [t["name"] for t in listed] == ["billing"]
    assert all("token" not in t for t in listed)
    integration = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/v1/devices", headers=integration).status_code == 200
    assert (
        client.post(
            "/api/v1/clusters", json={"name": "x", "kind": "eks"}, headers=integration
        ).status_code
        == 403
    )


def test_token_cannot_exceed_its_creators_role(client: TestClient, headers_for: Any) -> None:
    response = client.post(
        "/api/v1/tokens",
        json={"name": "escalate", "role": "admin"},
        headers=headers_for("operator"),
    )
    assert response.status_code == 403
    assert "operator" in response.json()["detail"]


def test_revoked_api_token_is_refused(client: TestClient, headers_for: Any) -> None:
    operator = headers_for("operator")
    created = client.post(
        "/api/v1/tokens", json={"name": "ci", "role": "operator"}, headers=operator
    ).json()
    headers = {"Authorization": f"Bearer {created['token']}"}
    assert client.get("/api/v1/devices", headers=headers).status_code == 200
    assert client.delete(f"/api/v1/tokens/{created['id']}", headers=operator).status_code == 200
    refused = client.get("/api/v1/devices", headers=headers)
    assert refused.status_code == 401
    assert "revoked" in refused.json()["detail"]


def test_expired_api_token_is_refused(
    client: TestClient, headers_for: Any, db_session: Session
) -> None:
    operator = headers_for("operator")
    created = client.post(
        "/api/v1/tokens", json={"name": "old", "role": "viewer"}, headers=operator
    ).json()
    record = db_session.get_one(ApiToken, uuid.UUID(created["id"]))
    record.expires_at = utcnow() - timedelta(seconds=1)
    db_session.flush()
    refused = client.get("/api/v1/devices", headers={"Authorization": f"Bearer {created['token']}"})
    assert refused.status_code == 401
    assert "expired" in refused.json()["detail"]


def test_garbage_token_is_refused(client: TestClient) -> None:
    response = client.get("/api/v1/devices", headers={"Authorization": "Bearer ept_nope"})
    assert response.status_code == 401


def test_operator_cannot_manage_users(client: TestClient, headers_for: Any) -> None:
    operator = headers_for("operator")
    assert client.get("/api/v1/users", headers=operator).status_code == 403
    body = {"username": "newbie", "password": PASSWORD, "role": "admin"}
    assert client.post("/api/v1/users", json=body, headers=operator).status_code == 403


def test_admin_manages_users(client: TestClient, headers_for: Any) -> None:
    admin = headers_for("admin")
    created = client.post(
        "/api/v1/users",
        json={"username": "newbie", "password": PASSWORD, "role": "operator"},
        headers=admin,
    )
    assert created.status_code == 201, created.text
    assert "password" not in created.text
    again = client.post(
        "/api/v1/users", json={"username": "newbie", "password": PASSWORD}, headers=admin
    )
    assert again.status_code == 409
    weak = client.post(
        "/api/v1/users", json={"username": "weak", "password": "short"}, headers=admin
    )
    assert weak.status_code == 422
    assert "password" in weak.json()["detail"]
    assert client.get(f"/api/v1/users/{created.json()['id']}", headers=admin).status_code == 200


def test_demoting_a_user_caps_their_tokens(
    client: TestClient, make_user: Any, headers_for: Any
) -> None:
    user = make_user("operator")
    session_token = login(client, user.username).json()["access_token"]
    headers = {"Authorization": f"Bearer {session_token}"}
    token = client.post(
        "/api/v1/tokens", json={"name": "t", "role": "operator"}, headers=headers
    ).json()
    admin = headers_for("admin")
    assert (
        client.patch(f"/api/v1/users/{user.id}", json={"role": "viewer"}, headers=admin).status_code
        == 200
    )
    integration = {"Authorization": f"Bearer {token['token']}"}
    assert (
        client.post(
            "/api/v1/clusters", json={"name": "c1", "kind": "eks"}, headers=integration
        ).status_code
        == 403
    )
    assert (
        client.post(
            "/api/v1/clusters", json={"name": "c1", "kind": "eks"}, headers=headers
        ).status_code
        == 403
    )
