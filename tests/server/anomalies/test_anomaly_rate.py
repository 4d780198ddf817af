"""Anomalies per minute: the overview's chart."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from server.anomalies import service as anomalies_service
from server.anomalies.orm import EventKind
from server.core.db import utcnow
from tests.server.ingest.fleet import make_event

RNG = random.Random(11)


def _store(
    session: Session, device_id: Any, scored_at: datetime, *, kind: EventKind = EventKind.ANOMALY
) -> None:
    event = make_event(RNG).model_copy(update={"scored_at": scored_at})
    rows = anomalies_service.event_rows(kind, device_id, None, utcnow(), [event])
    assert anomalies_service.store_events(session, rows) == 1


def test_rate_counts_anomalies_per_minute_with_empty_minutes_as_zero(
    db_session: Session, make_device: Any
) -> None:
    device, _ = make_device()
    now = datetime(2026, 12, 3, 10, 30, 20, tzinfo=UTC)
    for scored_at in (
        now - timedelta(seconds=5),
        now - timedelta(seconds=15),
        now - timedelta(minutes=2, seconds=-10),
        now - timedelta(minutes=9),
    ):
        _store(db_session, device.id, scored_at)
    _store(db_session, device.id, now - timedelta(seconds=3), kind=EventKind.SAMPLE)

    points = anomalies_service.anomaly_rate(db_session, minutes=5, now=now)
    assert [minute for minute, _ in points] == [
        datetime(2026, 12, 3, 10, m, tzinfo=UTC) for m in (26, 27, 28, 29, 30)
    ]
    assert [count for _, count in points] == [0, 0, 1, 0, 2]


def test_rate_over_rest(
    client: TestClient, headers_for: Any, db_session: Session, make_device: Any
) -> None:
    device, _ = make_device()
    _store(db_session, device.id, utcnow() - timedelta(seconds=1))
    viewer = headers_for("viewer")

    response = client.get("/api/v1/anomalies/rate", params={"minutes": 10}, headers=viewer)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["minutes"] == 10
    assert len(body["points"]) == 10
    assert body["total"] == sum(point["count"] for point in body["points"]) >= 1
    assert client.get("/api/v1/anomalies/rate", headers=viewer).json()["minutes"] == 60
    too_many = client.get("/api/v1/anomalies/rate", params={"minutes": 5000}, headers=viewer)
    assert too_many.status_code == 422
