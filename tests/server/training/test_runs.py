"""Training runs: asking for one through the API, the lock, the schedule."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from server.audit.orm import AuditEvent
from server.common.actor import Actor
from server.core.db import session_scope, utcnow
from server.training import runs, tasks
from server.training.exceptions import InvalidTrainingWindow
from server.training.orm import RunState, RunTrigger, TrainingRun
from server.worker import celery_app

ACTOR = Actor.system("test")
URL = "/api/v1/training/runs"


def test_on_demand_run_is_recorded_and_listed(
    client: TestClient, headers_for: Any, db_session: Session
) -> None:
    operator = headers_for("operator")
    response = client.post(URL, json={"note": "after the chargeback import"}, headers=operator)
    assert response.status_code == 202, response.text
    run = response.json()
    assert run["state"] == "queued"
    assert run["trigger"] == "on_demand"
    assert run["note"] == "after the chargeback import"
    assert run["requested_by"].startswith("operator-")
    assert run["model_id"] is None
    assert run["evidence"]["actor_kind"] == "user"
    start = datetime.fromisoformat(run["window_start"])
    end = datetime.fromisoformat(run["window_end"])
    assert end - start == timedelta(days=30)
    assert abs(end - utcnow()) < timedelta(minutes=5)
    audit = db_session.scalars(
        select(AuditEvent).where(AuditEvent.action == "training_run.request")
    ).all()
    assert [event.target_id for event in audit] == [run["id"]]

    window = {"window_start": "2026-11-01T00:00:00Z", "window_end": "2026-11-08T00:00:00Z"}
    second = client.post(URL, json=window, headers=operator).json()
    assert datetime.fromisoformat(second["window_start"]) == datetime(2026, 11, 1, tzinfo=UTC)

    viewer = headers_for("viewer")
    listed = client.get(URL, params={"limit": 1}, headers=viewer).json()
    assert [item["id"] for item in listed["items"]] == [second["id"]]
    rest = client.get(URL, params={"cursor": listed["next_cursor"]}, headers=viewer).json()
    assert [item["id"] for item in rest["items"]] == [run["id"]]
    only = client.get(URL, params={"trigger": "drift"}, headers=viewer).json()
    assert only["items"] == []

    fetched = client.get(f"{URL}/{run['id']}", headers=viewer)
    assert fetched.status_code == 200
    assert fetched.json() == run
    assert client.post(URL, json={}, headers=viewer).status_code == 403


def test_bad_requests_are_refused_with_the_reason(client: TestClient, headers_for: Any) -> None:
    operator = headers_for("operator")
    backwards = {"window_start": "2026-11-08T00:00:00Z", "window_end": "2026-11-01T00:00:00Z"}
    response = client.post(URL, json=backwards, headers=operator)
    assert response.status_code == 422
    assert "must be before window_end" in response.json()["detail"]
    naive = client.post(URL, json={"window_start": "2026-11-01T00:00:00"}, headers=operator)
    assert naive.status_code == 422
    unknown = client.post(URL, json={"model": "other"}, headers=operator)
    assert unknown.status_code == 422
    missing = client.get(f"{URL}/{uuid.uuid4()}", headers=operator)
    assert missing.status_code == 404
    assert "does not exist" in missing.json()["detail"]
    assert client.get(f"{URL}/not-a-uuid", headers=operator).status_code == 422
    assert client.get(URL, params={"cursor": "garbage"}, headers=operator).status_code == 422


def _request(session: Session, trigger: RunTrigger = RunTrigger.ON_DEMAND) -> TrainingRun:
    return runs.request_run(session, actor=ACTOR, trigger=trigger)


def test_only_one_run_holds_the_lock(db_session: Session) -> None:
    first, second = _request(db_session), _request(db_session)
    assert runs.claim_run(db_session, first.id).state is RunState.RUNNING
    assert first.running_lock is True

    refused = runs.claim_run(db_session, second.id)
    assert refused.state is RunState.SKIPPED
    assert first.started_at is not None
    assert refused.reason == (
        f"run {first.id} (on_demand) has been running since {first.started_at.isoformat()}"
    )
    assert refused.running_lock is None
    assert refused.finished_at is not None

    # Asked for while one runs: recorded as skipped at once, and not enqueued.
    late = _request(db_session, RunTrigger.SCHEDULE)
    assert late.state is RunState.SKIPPED
    assert late.reason is not None
    assert str(first.id) in late.reason

    # Claiming again changes nothing: the running one keeps running, the skipped stays so.
    assert runs.claim_run(db_session, first.id).state is RunState.RUNNING
    assert runs.claim_run(db_session, second.id).state is RunState.SKIPPED

    # Once the first has finished, the lock is free.
    runs.fail_run(db_session, first.id, error="boom")
    assert first.running_lock is None
    third = _request(db_session)
    assert third.state is RunState.QUEUED
    assert runs.claim_run(db_session, third.id).state is RunState.RUNNING


def test_the_database_refuses_a_second_lock_holder(db_session: Session) -> None:
    """Two workers that pass the claim's condition together: the unique lock column
    stops the second."""
    first, second = _request(db_session), _request(db_session)
    runs.claim_run(db_session, first.id)
    second.state = RunState.RUNNING
    second.running_lock = True
    with pytest.raises(IntegrityError), db_session.begin_nested():
        db_session.flush()


def test_a_run_presumed_dead_is_taken_over(db_session: Session) -> None:
    stuck, fresh = _request(db_session), _request(db_session)
    runs.claim_run(db_session, stuck.id)
    stuck.started_at = utcnow() - timedelta(hours=2, minutes=1)
    db_session.flush()
    assert runs.running_run(db_session) is None

    assert runs.claim_run(db_session, fresh.id).state is RunState.RUNNING
    db_session.refresh(stuck)
    assert stuck.state is RunState.FAILED
    assert stuck.running_lock is None
    assert stuck.error is not None
    assert "presumed dead" in stuck.error
    assert str(fresh.id) in stuck.error


def test_a_redelivered_stale_run_claims_itself_again(db_session: Session) -> None:
    run = _request(db_session)
    runs.claim_run(db_session, run.id)
    run.started_at = utcnow() - timedelta(hours=3)
    db_session.flush()
    claimed = runs.claim_run(db_session, run.id)
    assert claimed.state is RunState.RUNNING
    assert claimed.started_at is not None
    assert utcnow() - claimed.started_at < timedelta(minutes=1)


def test_a_transient_failure_gives_the_run_back(db_session: Session) -> None:
    run = _request(db_session)
    runs.claim_run(db_session, run.id)
    runs.release_run(db_session, run.id)
    assert run.state is RunState.QUEUED
    assert run.running_lock is None
    assert runs.claim_run(db_session, run.id).state is RunState.RUNNING


def test_window_must_not_be_empty(db_session: Session) -> None:
    now = utcnow()
    with pytest.raises(InvalidTrainingWindow):
        runs.request_run(
            db_session, actor=ACTOR, trigger=RunTrigger.ON_DEMAND, window_start=now, window_end=now
        )


def test_the_schedule_asks_once_per_period(db_session: Session) -> None:
    now = utcnow()
    run = runs.request_scheduled(db_session, now=now)
    assert run is not None
    assert run.trigger is RunTrigger.SCHEDULE
    assert run.requested_by == "retraining"
    assert run.evidence["schedule_hours"] == 24.0
    assert runs.request_scheduled(db_session, now=now + timedelta(hours=1)) is None
    later = runs.request_scheduled(db_session, now=now + timedelta(hours=13))
    assert later is not None


def test_the_beat_tasks_are_registered_and_run(committed_db: Engine) -> None:
    assert {
        "training.run",
        "training.retrain",
        "training.scheduled_retrain",
        "training.check_drift",
    } <= set(celery_app.tasks)
    requested = tasks.scheduled_retrain()
    assert requested is not None
    assert tasks.scheduled_retrain() is None
    with session_scope() as session:
        run = runs.get_run(session, uuid.UUID(requested))
        assert run.trigger is RunTrigger.SCHEDULE
        assert run.state is RunState.QUEUED
    # No stable model: nothing to check.
    assert tasks.check_drift() == {"model": None, "fired": [], "run_id": None}
