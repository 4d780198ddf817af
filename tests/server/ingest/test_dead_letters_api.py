"""Dead letters over REST: what ingest refused, and why."""

from __future__ import annotations

import base64
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from server.core.db import utcnow
from server.ingest import service as ingest_service
from server.ingest.service import DeadLetterIn, Reason


def test_dead_letters_are_listed_filtered_and_shown_raw(
    client: TestClient, headers_for: Any, db_session: Session
) -> None:
    letters = [
        DeadLetterIn(
            "edgeplane/v1/devices/d-1/anomalies", b"{oops", Reason.BAD_JSON, "bad", "d-1", utcnow()
        ),
        DeadLetterIn(
            "edgeplane/v1/devices/d-2/anomalies",
            b"\xff\x00",
            Reason.BAD_JSON,
            "bad",
            "d-2",
            utcnow(),
        ),
        DeadLetterIn(
            "edgeplane/v1/devices/d-2/samples", b"x" * 50, Reason.OVERSIZE, "big", "d-2", utcnow()
        ),
    ]
    ingest_service.store_batch(
        db_session, accepted=[], dead_letters=letters, dead_letter_max_bytes=20
    )
    viewer = headers_for("viewer")

    listed = client.get("/api/v1/dead-letters", headers=viewer)
    assert listed.status_code == 200, listed.text
    items = listed.json()["items"]
    assert [item["reason"] for item in items] == ["oversize", "bad_json", "bad_json"]
    assert items[0]["truncated"] is True
    assert items[0]["payload_size"] == 50

    by_reason = client.get("/api/v1/dead-letters", params={"reason": "bad_json"}, headers=viewer)
    assert len(by_reason.json()["items"]) == 2
    by_device = client.get("/api/v1/dead-letters", params={"device_id": "d-2"}, headers=viewer)
    assert len(by_device.json()["items"]) == 2
    counts = client.get("/api/v1/dead-letters/counts", headers=viewer).json()
    assert counts == {"by_reason": {"bad_json": 2, "oversize": 1}}

    text = client.get(f"/api/v1/dead-letters/{items[2]['id']}", headers=viewer).json()
    assert text["payload_text"] == "{oops"
    binary = client.get(f"/api/v1/dead-letters/{items[1]['id']}", headers=viewer).json()
    assert binary["payload_text"] is None
    assert base64.b64decode(binary["payload_base64"]) == b"\xff\x00"
    assert client.get("/api/v1/dead-letters/123456789", headers=viewer).status_code == 404
    assert (
        client.get("/api/v1/dead-letters", params={"reason": "nope"}, headers=viewer).status_code
        == 422
    )
