from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient


def test_liveness_needs_no_token(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}


def test_readiness_checks_every_dependency(client: TestClient) -> None:
    response = client.get("/readyz")
    body = response.json()
    assert response.status_code == 200, body
    assert {check["name"] for check in body["checks"]} == {
        "database",
        "broker",
        "mqtt",
        "object_store",
    }
    assert all(check["ok"] for check in body["checks"])


def test_readiness_reports_an_unreachable_dependency(client: TestClient, monkeypatch: Any) -> None:
    from server.core.config import get_settings
    from tests.conftest import free_port

    monkeypatch.setattr(get_settings().mqtt, "port", free_port())
    response = client.get("/readyz")
    assert response.status_code == 503
    mqtt = next(c for c in response.json()["checks"] if c["name"] == "mqtt")
    assert mqtt["ok"] is False
    assert "refused" in mqtt["detail"].lower()


def test_metrics_need_a_token_and_count_requests(client: TestClient, headers_for: Any) -> None:
    assert client.get("/metrics").status_code == 401
    headers = headers_for("viewer")
    client.get("/api/v1/devices", headers=headers)
    body = client.get("/metrics", headers=headers).text
    assert (
        'edgeplane_http_requests_total{method="GET",route="/api/v1/devices",status="200"}' in body
    )


def test_every_response_has_a_request_id(client: TestClient) -> None:
    response = client.get("/healthz", headers={"X-Request-ID": "8f14e45fceea467a9575b1b1ac6a6f0e"})
    assert response.headers["x-request-id"] == "8f14e45fceea467a9575b1b1ac6a6f0e"
    assert len(client.get("/healthz").headers["x-request-id"]) == 32


def test_unknown_route_is_a_problem_document(client: TestClient) -> None:
    response = client.get("/api/v1/nothing-here")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["status"] == 404


def test_openapi_is_served(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    assert "/api/v1/devices" in schema["paths"]
    assert client.get("/docs").status_code == 200
