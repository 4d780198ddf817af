from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient


def test_changes_are_audited_with_who_what_and_where(client: TestClient, headers_for: Any) -> None:
    operator = headers_for("operator")
    created = client.post(
        "/api/v1/clusters",
        json={"name": "audited", "kind": "eks"},
        headers=operator,
        # TestClient's peer address is "testclient"; a request id can be supplied by a proxy.
    )
    request_id = created.headers["x-request-id"]
    events = client.get(
        "/api/v1/audit-events", params={"target_type": "cluster"}, headers=operator
    ).json()["items"]
    event = next(e for e in events if e["action"] == "cluster.create")
    assert event["target_id"] == created.json()["id"]
    assert event["actor_kind"] == "user"
    assert event["actor_name"].startswith("operator-")
    assert event["ip"] == "testclient"
    assert event["request_id"] == request_id
    assert event["details"]["name"] == "audited"


def test_refused_changes_are_not_audited(client: TestClient, headers_for: Any) -> None:
    viewer = headers_for("viewer")
    assert (
        client.post(
            "/api/v1/clusters", json={"name": "nope", "kind": "eks"}, headers=viewer
        ).status_code
        == 403
    )
    events = client.get("/api/v1/audit-events", params={"action": "cluster.create"}, headers=viewer)
    assert events.json()["items"] == []


def test_audit_log_pages_newest_first(client: TestClient, headers_for: Any) -> None:
    operator = headers_for("operator")
    for index in range(5):
        client.post(
            "/api/v1/clusters", json={"name": f"c-{index}", "kind": "eks"}, headers=operator
        )
    first = client.get(
        "/api/v1/audit-events", params={"action": "cluster.create", "limit": 3}, headers=operator
    ).json()
    second = client.get(
        "/api/v1/audit-events",
        params={"action": "cluster.create", "limit": 3, "cursor": first["next_cursor"]},
        headers=operator,
    ).json()
    names = [e["details"]["name"] for e in first["items"] + second["items"]]
    assert names == ["c-4", "c-3", "c-2", "c-1", "c-0"]
    assert second["next_cursor"] is None
