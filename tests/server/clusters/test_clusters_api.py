from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.orm import Session

KUBECONFIG = (
    "apiVersion: v1\nkind: Config\nusers:\n- name: admin\n  user: {token: s3cr3t-kube-token}\n"
)


def test_cluster_lifecycle(client: TestClient, headers_for: Any) -> None:
    operator = headers_for("operator")
    created = client.post(
        "/api/v1/clusters",
        json={
            "name": "eu-store-17",
            "kind": "k3s-edge",
            "region": "eu-west",
            "labels": {"tier": "edge"},
            "kubeconfig": KUBECONFIG,
        },
        headers=operator,
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["has_kubeconfig"] is True
    assert "kubeconfig" not in body
    assert "s3cr3t" not in created.text
    cluster_id = body["id"]
    duplicate = client.post(
        "/api/v1/clusters", json={"name": "eu-store-17", "kind": "eks"}, headers=operator
    )
    assert duplicate.status_code == 409
    patched = client.patch(
        f"/api/v1/clusters/{cluster_id}", json={"region": "eu-central"}, headers=operator
    )
    assert patched.json()["region"] == "eu-central"
    assert client.delete(f"/api/v1/clusters/{cluster_id}", headers=operator).status_code == 204
    assert client.get(f"/api/v1/clusters/{cluster_id}", headers=operator).status_code == 404


def test_kubeconfig_is_encrypted_at_rest(
    client: TestClient, headers_for: Any, db_session: Session
) -> None:
    created = client.post(
        "/api/v1/clusters",
        json={"name": "aks-west", "kind": "aks", "kubeconfig": KUBECONFIG},
        headers=headers_for("operator"),
    ).json()
    raw = db_session.execute(
        text("SELECT kubeconfig FROM clusters WHERE name = 'aks-west'")
    ).scalar_one()
    assert isinstance(raw, bytes | memoryview)
    assert b"s3cr3t-kube-token" not in bytes(raw)
    import uuid

    from server.clusters import service as clusters_service

    db_session.expire_all()
    assert (
        clusters_service.get_cluster(db_session, uuid.UUID(created["id"])).kubeconfig == KUBECONFIG
    )


def test_cluster_input_is_validated(client: TestClient, headers_for: Any) -> None:
    operator = headers_for("operator")
    bad_name = client.post(
        "/api/v1/clusters", json={"name": "Not A DNS Name", "kind": "eks"}, headers=operator
    )
    assert bad_name.status_code == 422
    assert bad_name.json()["detail"].startswith("body.name")
    bad_kind = client.post("/api/v1/clusters", json={"name": "ok", "kind": "gke"}, headers=operator)
    assert bad_kind.status_code == 422
    not_json = client.post(
        "/api/v1/clusters", content=b"{", headers={**operator, "content-type": "application/json"}
    )
    assert not_json.status_code == 422
