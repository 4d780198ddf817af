"""Anomalies over REST: listing and filters, labels, chargebacks, the live stream."""

from __future__ import annotations

import random
import uuid
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from server.anomalies import service as anomalies_service
from server.anomalies.orm import EventKind, ScoredEvent
from server.audit.orm import AuditEvent
from server.core.db import session_scope, utcnow
from tests.factories import enroll_device
from tests.server.ingest.fleet import make_event

RNG = random.Random(5)


def store(
    session: Session,
    device_id: uuid.UUID,
    count: int,
    *,
    kind: EventKind = EventKind.ANOMALY,
    model_version: str = "m-1",
    cluster_id: uuid.UUID | None = None,
    score: float | None = None,
) -> list[Any]:
    events = []
    for _ in range(count):
        event = make_event(RNG)
        updates: dict[str, Any] = {"model_version": model_version}
        if score is not None:
            updates["score"] = score
        events.append(event.model_copy(update=updates))
    rows = anomalies_service.event_rows(kind, device_id, cluster_id, utcnow(), events)
    assert anomalies_service.store_events(session, rows) == count
    return events


def test_store_is_idempotent_and_dedupes_within_a_batch(
    db_session: Session, make_device: Any
) -> None:
    device, _ = make_device()
    event = make_event(RNG)
    (row,) = anomalies_service.event_rows(EventKind.ANOMALY, device.id, None, utcnow(), [event])
    assert anomalies_service.store_events(db_session, [row, row]) == 1
    assert anomalies_service.store_events(db_session, [row]) == 0
    stored = db_session.scalars(select(ScoredEvent)).one()
    assert anomalies_service.decode_features(stored.features) == pytest.approx(event.features)
    assert stored.transaction_at == event.transaction.timestamp


def test_list_filters_and_pages(
    client: TestClient, headers_for: Any, db_session: Session, make_device: Any
) -> None:
    a, _ = make_device()
    b, _ = make_device()
    cluster = uuid.uuid4()
    store(db_session, a.id, 5, score=0.9)
    store(db_session, b.id, 3, model_version="m-2", cluster_id=cluster, score=0.97)
    store(db_session, a.id, 2, kind=EventKind.SAMPLE, score=0.1)
    headers = headers_for("viewer")

    def ids(**params: Any) -> list[int]:
        response = client.get("/api/v1/anomalies", params=params, headers=headers)
        assert response.status_code == 200, response.text
        return [item["id"] for item in response.json()["items"]]

    everything = ids()
    assert len(everything) == 8
    assert everything == sorted(everything, reverse=True)
    assert len(ids(device_id=str(a.id))) == 5
    assert len(ids(cluster_id=str(cluster))) == 3
    assert len(ids(model_version="m-2")) == 3
    assert len(ids(min_score=0.95)) == 3
    assert len(ids(max_score=0.95)) == 5
    assert len(ids(kind="sample")) == 2
    assert len(ids(label="unlabelled")) == 8
    assert len(ids(label="confirmed_fraud")) == 0
    assert len(ids(since=(utcnow() - timedelta(hours=1)).isoformat())) == 8
    assert ids(until=(utcnow() - timedelta(hours=1)).isoformat()) == []

    pages: list[int] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 3}
        if cursor:
            params["cursor"] = cursor
        body = client.get("/api/v1/anomalies", params=params, headers=headers).json()
        pages += [item["id"] for item in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert pages == everything

    one = client.get(f"/api/v1/anomalies/{everything[0]}", headers=headers).json()
    assert one["transaction"]["currency"] == "EUR"
    assert len(one["features"]) > 10
    assert client.get("/api/v1/anomalies/999999999", headers=headers).status_code == 404
    naive = client.get(
        "/api/v1/anomalies", params={"since": "2026-01-01T00:00:00"}, headers=headers
    )
    assert naive.status_code == 422


def test_operators_label_one_or_many_and_it_is_audited(
    client: TestClient, headers_for: Any, db_session: Session, make_device: Any
) -> None:
    device, _ = make_device()
    store(db_session, device.id, 4)
    ids = sorted(db_session.scalars(select(ScoredEvent.id)))
    operator = headers_for("operator")

    response = client.put(
        f"/api/v1/anomalies/{ids[0]}/label", json={"label": "false_positive"}, headers=operator
    )
    assert response.status_code == 200, response.text
    assert response.json()["label"] == "false_positive"
    assert response.json()["label_source"] == "operator"
    assert response.json()["labelled_by"].startswith("operator-")

    response = client.post(
        "/api/v1/anomalies/labels",
        json={"ids": [*ids[1:], 987654321], "label": "confirmed_fraud"},
        headers=operator,
    )
    assert response.json() == {"updated": 3, "missing": [987654321]}
    labelled = client.get(
        "/api/v1/anomalies", params={"label": "confirmed_fraud"}, headers=operator
    ).json()
    assert sorted(item["id"] for item in labelled["items"]) == ids[1:]

    cleared = client.put(
        f"/api/v1/anomalies/{ids[0]}/label", json={"label": None}, headers=operator
    )
    assert cleared.json()["label"] is None
    assert (
        client.put(
            "/api/v1/anomalies/987654321/label", json={"label": None}, headers=operator
        ).status_code
        == 404
    )
    assert (
        client.post(
            "/api/v1/anomalies/labels", json={"ids": ids, "label": "maybe"}, headers=operator
        ).status_code
        == 422
    )

    actions = db_session.scalars(
        select(AuditEvent.action).where(AuditEvent.action == "anomaly.label")
    ).all()
    assert len(actions) == 3


def test_chargebacks_label_matching_events_and_report_the_rest(
    client: TestClient, headers_for: Any, db_session: Session, make_device: Any
) -> None:
    device, _ = make_device()
    anomalies = store(db_session, device.id, 3)
    samples = store(db_session, device.id, 1, kind=EventKind.SAMPLE)
    operator = headers_for("operator")
    first = client.get("/api/v1/anomalies", headers=operator).json()["items"][-1]
    client.put(
        f"/api/v1/anomalies/{first['id']}/label", json={"label": "false_positive"}, headers=operator
    )

    charged = [anomalies[0].transaction.transaction_id, samples[0].transaction.transaction_id]
    response = client.post(
        "/api/v1/chargebacks",
        json={
            "chargebacks": [{"transaction_id": t} for t in [*charged, "tx-nobody-saw", charged[0]]]
        },
        headers=operator,
    )
    assert response.status_code == 200, response.text
    assert response.json() == {
        "received": 3,
        "matched": 2,
        "events_labelled": 2,
        "unmatched": ["tx-nobody-saw"],
    }
    rows = db_session.scalars(
        select(ScoredEvent).where(ScoredEvent.transaction_id.in_(charged))
    ).all()
    assert {(r.label, r.label_source) for r in rows} == {("confirmed_fraud", "chargeback")}

    charged_again = anomalies[1].transaction.transaction_id
    csv = f"transaction_id,reason,amount\n{charged_again},fraud,12.5\nunknown-tx,,\n"
    response = client.post(
        "/api/v1/chargebacks/csv",
        files={"file": ("chargebacks.csv", csv.encode(), "text/csv")},
        headers=operator,
    )
    assert response.status_code == 200, response.text
    assert response.json()["matched"] == 1
    assert response.json()["unmatched"] == ["unknown-tx"]

    bad = client.post(
        "/api/v1/chargebacks/csv",
        files={"file": ("x.csv", b"id,reason\n1,x\n", "text/csv")},
        headers=operator,
    )
    assert bad.status_code == 422
    assert "transaction_id" in bad.json()["detail"]
    audited = db_session.scalars(
        select(AuditEvent).where(AuditEvent.action == "anomaly.import_chargebacks")
    ).all()
    assert len(audited) == 2


def test_stream_sends_new_anomalies_as_server_sent_events(
    committed_db: Engine, client: TestClient, headers_for: Any, make_device: Any
) -> None:

    with session_scope() as session:
        device = enroll_device(session, name="pos-stream").device
        store(session, device.id, 3)
        store(session, device.id, 1, kind=EventKind.SAMPLE)
        first_id = min(session.scalars(select(ScoredEvent.id)))
    headers = headers_for("viewer")

    response = client.get(
        "/api/v1/anomalies/stream", params={"after": 0, "max_events": 2}, headers=headers
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    blocks = [b for b in response.text.split("\n\n") if b.startswith("id:")]
    assert [b.splitlines()[0] for b in blocks] == [f"id: {first_id}", f"id: {first_id + 1}"]
    assert all("event: anomaly" in b for b in blocks)

    resumed = client.get(
        "/api/v1/anomalies/stream",
        params={"max_events": 1},
        headers={**headers, "Last-Event-ID": str(first_id + 1)},
    )
    assert f"id: {first_id + 2}\n" in resumed.text
