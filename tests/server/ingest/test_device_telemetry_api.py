"""A device's telemetry over REST: the windows behind its latency and flag-rate charts."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from edge_agent.protocol.messages import LatencySummary, OutboxSummary, Telemetry
from edge_agent.protocol.topics import Channel
from server.core.db import utcnow
from server.ingest import service as ingest_service


def _window(device_id: uuid.UUID, *, scored: int, flagged: int, depth: int, ago: float) -> Any:
    telemetry = Telemetry(
        event_id=uuid.uuid4(),
        device_id=str(device_id),
        sent_at=utcnow() - timedelta(seconds=ago),
        window_seconds=60,
        agent_version="0.3.0",
        model_version="m-1",
        feature_spec_version=1,
        scored=scored,
        flagged=flagged,
        inference_errors=0,
        model_load_failures=0,
        latency=LatencySummary(p50_ms=1.5, p95_ms=4.0, p99_ms=9.0),
        score_histogram=[0] * 20,
        outbox=OutboxSummary(depth=depth, dropped_samples=0, dropped_anomalies=0),
    )
    parsed = ingest_service.Parsed(device_id, Channel.TELEMETRY, telemetry)
    return ingest_service.Accepted(parsed, None, utcnow())


def test_device_telemetry_is_listed_oldest_first_within_the_window(
    client: TestClient, headers_for: Any, db_session: Session, make_device: Any
) -> None:
    device, _ = make_device()
    other, _ = make_device()
    windows = [
        _window(device.id, scored=100, flagged=4, depth=3, ago=90),
        _window(device.id, scored=0, flagged=0, depth=0, ago=30),
        _window(device.id, scored=50, flagged=1, depth=1, ago=2 * 3600),
        _window(other.id, scored=10, flagged=1, depth=0, ago=10),
    ]
    ingest_service.store_batch(
        db_session, accepted=windows, dead_letters=[], dead_letter_max_bytes=0
    )
    viewer = headers_for("viewer")

    response = client.get(f"/api/v1/devices/{device.id}/telemetry", headers=viewer)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["minutes"] == 60
    items = body["items"]
    assert [item["scored"] for item in items] == [100, 0]
    assert items[0]["flag_rate"] == 0.04
    assert items[1]["flag_rate"] is None
    assert [item["outbox_depth"] for item in items] == [3, 0]
    assert items[0]["latency_p50_ms"] == 1.5
    assert items[0]["latency_p95_ms"] == 4.0

    wider = client.get(
        f"/api/v1/devices/{device.id}/telemetry", params={"minutes": 180}, headers=viewer
    ).json()
    assert [item["scored"] for item in wider["items"]] == [50, 100, 0]

    unknown = client.get(f"/api/v1/devices/{uuid.uuid4()}/telemetry", headers=viewer)
    assert unknown.status_code == 404
    too_long = client.get(
        f"/api/v1/devices/{device.id}/telemetry", params={"minutes": 0}, headers=viewer
    )
    assert too_long.status_code == 422
