"""Factories that build data through the services, as the app would."""

from __future__ import annotations

import secrets
import uuid
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy.orm import Session

from edge_agent.protocol.artifact import ModelManifest
from server.common.actor import Actor
from server.devices import service as devices_service
from server.devices.schemas import EnrollmentTokenCreate, EnrollRequest
from server.ingest.orm import TelemetryWindow
from server.registry import service as registry_service
from server.registry.orm import ModelVersion
from server.registry.schemas import ModelMetadata

TEST_ACTOR = Actor.system("test")


def enroll_device(
    session: Session,
    *,
    name: str | None = None,
    cluster_id: uuid.UUID | None = None,
    labels: dict[str, str] | None = None,
) -> devices_service.Enrollment:
    """A device enrolled with a fresh one-time token: the device and its credential."""
    issued = devices_service.create_enrollment_token(
        session,
        actor=TEST_ACTOR,
        data=EnrollmentTokenCreate(cluster_id=cluster_id, labels=labels or {}),
    )
    return devices_service.enroll(
        session,
        token=issued.token,
        data=EnrollRequest(name=name or f"pos-{secrets.token_hex(3)}"),
        ip="127.0.0.1",
        request_id=None,
    )


FIXTURE_MODELS = Path(__file__).resolve().parent / "edge_agent" / "fixtures" / "models"


def register_fixture_model(
    session: Session, *, fixture: str = "mlp-1", threshold: float | None = None
) -> ModelVersion:
    """A fixture model registered (checked, signed, stored) as a candidate; its own
    threshold unless one is given."""
    folder = FIXTURE_MODELS / fixture
    manifest = ModelManifest.model_validate_json((folder / "manifest.json").read_bytes())
    return registry_service.register_model(
        session,
        actor=TEST_ACTOR,
        model_bytes=(folder / "model.tflite").read_bytes(),
        metadata=ModelMetadata.from_manifest(
            manifest, name="fraud", **({} if threshold is None else {"threshold": threshold})
        ),
        source="test",
    )


def telemetry_window(
    device_id: uuid.UUID,
    model_version: str | None,
    *,
    scored: int,
    flagged: int,
    sent_at: datetime,
    model_load_failures: int = 0,
    latency_p95_ms: float = 2.0,
    window_seconds: float = 60.0,
) -> TelemetryWindow:
    """One device's telemetry window as the ingest stores it (received a second later)."""
    return TelemetryWindow(
        device_id=device_id,
        cluster_id=None,
        event_id=uuid.uuid4(),
        sent_at=sent_at,
        received_at=sent_at + timedelta(seconds=1),
        window_seconds=window_seconds,
        agent_version="test",
        model_version=model_version,
        feature_spec_version=1,
        scored=scored,
        flagged=flagged,
        inference_errors=0,
        model_load_failures=model_load_failures,
        latency_p50_ms=latency_p95_ms / 2,
        latency_p95_ms=latency_p95_ms,
        latency_p99_ms=latency_p95_ms * 1.5,
        score_histogram=[],
        outbox={},
        last_update=None,
    )
