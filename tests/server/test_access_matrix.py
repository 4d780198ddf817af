"""Every route, taken from the app's own OpenAPI schema, so new routes are covered too."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient

from server.app import create_app

# Routes that answer without a bearer token, on purpose.
PUBLIC = {"health-liveness", "health-readiness", "auth-login", "agent-enroll"}
# Mutating routes a viewer may call: ending one's own session changes nothing else.
VIEWER_MAY = {"auth-logout"}
MUTATING = {"post", "put", "patch", "delete"}


def _operations() -> list[tuple[str, str, str]]:
    schema = create_app().openapi()
    return [
        (method.upper(), path, operation["operationId"])
        for path, item in schema["paths"].items()
        for method, operation in item.items()
        if method in MUTATING | {"get"}
    ]


OPERATIONS = _operations()


def _url(path: str) -> str:
    return re.sub(r"\{[^}]+\}", str(uuid.uuid4()), path)


def _call(client: TestClient, method: str, path: str, **kwargs: Any) -> int:
    return client.request(
        method, _url(path), json={} if method != "GET" else None, **kwargs
    ).status_code


def test_schema_lists_routes() -> None:
    assert len(OPERATIONS) > 20
    assert all(op_id for _, _, op_id in OPERATIONS)


@pytest.mark.parametrize(
    ("method", "path", "op_id"),
    [op for op in OPERATIONS if op[2] not in PUBLIC],
    ids=lambda value: str(value),
)
def test_every_non_public_route_requires_a_token(
    client: TestClient, method: str, path: str, op_id: str
) -> None:
    response = client.request(method, _url(path), json={} if method != "GET" else None)
    assert response.status_code == 401, (op_id, response.text)
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(
    ("method", "path", "op_id"),
    [op for op in OPERATIONS if op[0] != "GET" and op[2] not in PUBLIC | VIEWER_MAY],
    ids=lambda value: str(value),
)
def test_viewer_gets_403_on_every_mutating_route(
    client: TestClient, headers_for: Any, method: str, path: str, op_id: str
) -> None:
    assert _call(client, method, path, headers=headers_for("viewer")) == 403, op_id


@pytest.mark.parametrize(
    ("method", "path", "op_id"),
    [
        op
        for op in OPERATIONS
        if op[2] not in PUBLIC
        and not op[2].startswith("agent-")
        and op[2] != "auth-me"
        and op[2] != "auth-logout"
    ],
    ids=lambda value: str(value),
)
def test_device_credentials_cannot_use_operator_routes(
    client: TestClient, make_device: Any, method: str, path: str, op_id: str
) -> None:
    _, credential = make_device()
    assert _call(client, method, path, headers={"Authorization": f"Bearer {credential}"}) == 403, (
        op_id
    )


@pytest.mark.parametrize(
    ("method", "path", "op_id"),
    [op for op in OPERATIONS if op[2].startswith("agent-") and op[2] not in PUBLIC],
    ids=lambda value: str(value),
)
def test_user_tokens_cannot_use_device_routes(
    client: TestClient, headers_for: Any, method: str, path: str, op_id: str
) -> None:
    assert _call(client, method, path, headers=headers_for("admin")) == 403, op_id


def test_viewer_can_read(client: TestClient, headers_for: Any) -> None:
    headers = headers_for("viewer")
    for path in ("/api/v1/devices", "/api/v1/clusters", "/api/v1/audit-events", "/metrics"):
        assert client.get(path, headers=headers).status_code == 200, path
