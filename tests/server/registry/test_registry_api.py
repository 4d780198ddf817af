from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.orm import Session

from edge_agent.features import FEATURE_SPEC_VERSION
from edge_agent.protocol.artifact import ArtifactError, load_public_key, verify_artifact
from server.registry.orm import ModelStage, ModelVersion

FIXTURES = Path(__file__).resolve().parents[2] / "edge_agent" / "fixtures" / "models"
METADATA = {
    "name": "fraud",
    "feature_spec_version": FEATURE_SPEC_VERSION,
    "threshold": 0.7,
    "training_start": "2026-01-05T00:00:00Z",
    "training_end": "2026-01-12T00:00:00Z",
    "training_rows": 120000,
    "metrics": {"pr_auc": 0.88},
}


def upload(client: TestClient, headers: dict[str, str], model: bytes, **metadata: Any) -> Any:
    return client.post(
        "/api/v1/models",
        files={"model": ("model.tflite", model, "application/octet-stream")},
        data={"metadata": json.dumps(METADATA | metadata)},
        headers=headers,
    )


def fixture_model(name: str = "mlp-1") -> bytes:
    return (FIXTURES / name / "model.tflite").read_bytes()


def _download(client: TestClient, headers: dict[str, str], model_id: str) -> dict[str, bytes]:
    files = {}
    for filename in ("model.tflite", "manifest.json", "manifest.sig"):
        response = client.get(f"/api/v1/agent/models/{model_id}/files/{filename}", headers=headers)
        assert response.status_code == 200, response.text
        files[filename] = response.content
    return files


def _verify(files: dict[str, bytes], keys: list[str]) -> str:
    manifest = verify_artifact(
        manifest_bytes=files["manifest.json"],
        signature_b64=files["manifest.sig"].decode().strip(),
        model_bytes=files["model.tflite"],
        public_keys=[load_public_key(key) for key in keys],
        supported_feature_spec_versions=frozenset({FEATURE_SPEC_VERSION}),
    )
    return manifest.version


def test_upload_versions_signs_and_serves_to_devices(
    client: TestClient, headers_for: Any, make_device: Any
) -> None:
    operator = headers_for("operator")
    first = upload(client, operator, fixture_model("mlp-1"))
    assert first.status_code == 201, first.text
    body = first.json()
    assert (body["label"], body["version"], body["stage"]) == ("fraud-1", 1, "candidate")
    assert body["lineage"]["source"] == "upload"
    second = upload(client, operator, fixture_model("mlp-2"), parent_version_id=body["id"]).json()
    assert second["label"] == "fraud-2"
    assert second["lineage"]["parent_version_id"] == body["id"]

    _, credential = make_device()
    device = {"Authorization": f"Bearer {credential}"}
    keys = client.get("/api/v1/agent/trusted-keys", headers=device).json()
    files = _download(client, device, body["id"])
    assert files["model.tflite"] == fixture_model("mlp-1")
    assert _verify(files, keys) == "fraud-1"


def test_tampered_artifact_does_not_verify(
    client: TestClient, headers_for: Any, make_device: Any
) -> None:
    model_id = upload(client, headers_for("operator"), fixture_model()).json()["id"]
    _, credential = make_device()
    device = {"Authorization": f"Bearer {credential}"}
    keys = client.get("/api/v1/agent/trusted-keys", headers=device).json()
    files = _download(client, device, model_id)
    tampered = files | {
        "manifest.json": files["manifest.json"].replace(b'"threshold": 0.7', b'"threshold": 0.9')
    }
    with pytest.raises(ArtifactError, match="signature"):
        _verify(tampered, keys)


@pytest.mark.parametrize(
    ("model", "metadata", "reason"),
    [
        (b"", {}, "empty"),
        (b"not a flatbuffer at all", {}, "does not load"),
        ("wrong-shape", {}, "input"),
        ("nan", {}, "non-finite"),
        ("mlp-1", {"feature_spec_version": 99}, "feature spec v99 is unknown"),
        ("mlp-1", {"threshold": 1.5}, "metadata.threshold"),
        ("mlp-1", {"training_end": "2025-01-01T00:00:00Z"}, "training_end is before"),
        ("mlp-1", {"name": "Bad Name"}, "metadata.name"),
    ],
)
def test_bad_models_are_refused_with_the_reason(
    client: TestClient, headers_for: Any, model: bytes | str, metadata: dict[str, Any], reason: str
) -> None:
    model_bytes = fixture_model(model) if isinstance(model, str) else model
    response = upload(client, headers_for("operator"), model_bytes, **metadata)
    assert response.status_code == 422, response.text
    assert reason in response.json()["detail"]


def test_key_rotation_keeps_old_models_verifiable_until_retired(
    client: TestClient, headers_for: Any, make_device: Any, db_session: Session
) -> None:
    operator, admin = headers_for("operator"), headers_for("admin")
    old_model = upload(client, operator, fixture_model()).json()
    first_key = client.get("/api/v1/signing-keys", headers=operator).json()["items"]
    assert [k["is_active"] for k in first_key] == [True]

    rotated = client.post("/api/v1/signing-keys/rotate", headers=admin)
    assert rotated.status_code == 200
    new_model = upload(client, operator, fixture_model("mlp-2")).json()
    assert new_model["signing_key_id"] == rotated.json()["id"] != old_model["signing_key_id"]

    _, credential = make_device()
    device = {"Authorization": f"Bearer {credential}"}
    keys = client.get("/api/v1/agent/trusted-keys", headers=device).json()
    assert len(keys) == 2
    assert _verify(_download(client, device, old_model["id"]), keys) == "fraud-1"

    assert (
        client.delete(f"/api/v1/signing-keys/{rotated.json()['id']}", headers=admin).status_code
        == 409
    )
    retired = client.delete(f"/api/v1/signing-keys/{old_model['signing_key_id']}", headers=admin)
    assert retired.status_code == 200
    keys = client.get("/api/v1/agent/trusted-keys", headers=device).json()
    assert keys == [rotated.json()["public_key"]]
    with pytest.raises(ArtifactError):
        _verify(_download(client, device, old_model["id"]), keys)
    assert _verify(_download(client, device, new_model["id"]), keys) == "fraud-2"

    raw = db_session.execute(text("SELECT private_key FROM signing_keys")).scalars().all()
    assert raw
    assert all(b"PRIVATE KEY" not in bytes(value) for value in raw)


def test_models_list_and_retire(client: TestClient, headers_for: Any, db_session: Session) -> None:
    operator = headers_for("operator")
    ids = [upload(client, operator, fixture_model()).json()["id"] for _ in range(3)]
    listed = client.get("/api/v1/models", params={"limit": 2}, headers=headers_for("viewer")).json()
    assert [m["label"] for m in listed["items"]] == ["fraud-3", "fraud-2"]
    assert listed["next_cursor"]

    retired = client.post(f"/api/v1/models/{ids[0]}/retire", headers=operator)
    assert retired.json()["stage"] == "retired"
    db_session.get_one(ModelVersion, uuid.UUID(ids[1])).stage = ModelStage.STABLE
    db_session.flush()
    refused = client.post(f"/api/v1/models/{ids[1]}/retire", headers=operator)
    assert refused.status_code == 409
    assert "stable" in refused.json()["detail"]
    assert client.get(f"/api/v1/models/{uuid.uuid4()}", headers=operator).status_code == 404
    assert (
        client.get(f"/api/v1/models/{ids[1]}/files/other.bin", headers=operator).status_code == 422
    )
