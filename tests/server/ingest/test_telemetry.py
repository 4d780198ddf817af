"""Telemetry windows: stored once, applied to the device once, summed per model."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from edge_agent.protocol.messages import LatencySummary, OutboxSummary, Telemetry
from edge_agent.protocol.topics import Channel
from server.core.db import utcnow
from server.devices.orm import Device, DeviceStatus
from server.ingest import service as ingest_service
from server.ingest.orm import TelemetryWindow


def _window(device_id: uuid.UUID, model: str, *, scored: int, flagged: int, ago: float) -> Any:
    telemetry = Telemetry(
        event_id=uuid.uuid4(),
        device_id=str(device_id),
        sent_at=utcnow() - timedelta(seconds=ago),
        window_seconds=60,
        agent_version="0.3.0",
        model_version=model,
        feature_spec_version=1,
        scored=scored,
        flagged=flagged,
        inference_errors=1,
        model_load_failures=0,
        latency=LatencySummary(p50_ms=1, p95_ms=4, p99_ms=9),
        score_histogram=[0] * 20,
        outbox=OutboxSummary(depth=0, dropped_samples=0, dropped_anomalies=0),
    )
    parsed = ingest_service.Parsed(device_id, Channel.TELEMETRY, telemetry)
    return ingest_service.Accepted(parsed, None, utcnow())


def test_windows_are_stored_once_and_summed_per_model(
    db_session: Session, make_device: Any
) -> None:
    a, _ = make_device()
    b, _ = make_device()
    newest = _window(a.id, "m-2", scored=100, flagged=4, ago=10)
    windows = [
        _window(a.id, "m-1", scored=200, flagged=2, ago=120),
        newest,
        _window(b.id, "m-1", scored=300, flagged=3, ago=30),
    ]
    result = ingest_service.store_batch(
        db_session, accepted=windows, dead_letters=[], dead_letter_max_bytes=0
    )
    assert result.counts[Channel.TELEMETRY].stored == 3
    again = ingest_service.store_batch(
        db_session, accepted=windows, dead_letters=[], dead_letter_max_bytes=0
    )
    assert again.counts[Channel.TELEMETRY].duplicates == 3
    assert len(db_session.scalars(select(TelemetryWindow)).all()) == 3

    device = db_session.get_one(Device, a.id)
    db_session.refresh(device)
    assert device.model_version == "m-2"  # the newest window wins
    assert device.status is DeviceStatus.ONLINE

    totals = {
        t.model_version: t
        for t in ingest_service.model_totals(db_session, since=utcnow() - timedelta(hours=1))
    }
    assert (totals["m-1"].devices, totals["m-1"].windows, totals["m-1"].scored) == (2, 2, 500)
    assert totals["m-1"].flag_rate == 5 / 500
    assert totals["m-1"].inference_errors == 2
    assert totals["m-1"].mean_latency_p95_ms == 4
    canary = ingest_service.model_totals(
        db_session, since=utcnow() - timedelta(hours=1), device_ids=[b.id]
    )
    assert [(t.model_version, t.scored) for t in canary] == [("m-1", 300)]
