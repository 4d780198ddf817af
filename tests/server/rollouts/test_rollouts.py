"""Rollouts through the API and the service: cohorts, analysis verdicts, decisions."""

from __future__ import annotations

import math
import uuid
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from server.clusters import service as clusters_service
from server.clusters.schemas import ClusterCreate
from server.core.db import utcnow
from server.registry.orm import ModelStage, ModelVersion
from server.rollouts import service as rollouts_service
from server.rollouts.orm import DesiredState, Rollout, RolloutState
from server.rollouts.schemas import RolloutCreate, RolloutStep, RolloutTarget, TargetKind
from tests.factories import TEST_ACTOR, enroll_device, register_fixture_model, telemetry_window

QUICK = [
    {"percent": 25, "soak_seconds": 0, "min_devices": 1},
    {"percent": 50, "soak_seconds": 0, "min_devices": 1},
    {"percent": 100, "soak_seconds": 0, "min_devices": 1},
]
THRESHOLDS = {"min_scored": 100}


@pytest.fixture
def fleet(db_session: Session) -> list[uuid.UUID]:
    return [enroll_device(db_session, name=f"pos-{i:02d}").device.id for i in range(20)]


@pytest.fixture
def stable(db_session: Session, fleet: list[uuid.UUID]) -> ModelVersion:
    """mlp-1, stable and desired on every device of the fleet."""
    model = register_fixture_model(db_session)
    rollout = rollouts_service.start_rollout(
        db_session, actor=TEST_ACTOR, data=RolloutCreate(model_id=model.id)
    )
    rollouts_service.promote(db_session, actor=TEST_ACTOR, rollout_id=rollout.id)
    assert model.stage is ModelStage.STABLE
    return model


@pytest.fixture
def candidate(db_session: Session) -> ModelVersion:
    return register_fixture_model(db_session, fixture="mlp-2")


def desired(session: Session, device_ids: list[uuid.UUID]) -> dict[uuid.UUID, uuid.UUID | None]:
    rows = session.execute(
        select(DesiredState.device_id, DesiredState.model_id).where(
            DesiredState.device_id.in_(device_ids)
        )
    )
    return dict(rows.all())


def cohort(session: Session, rollout: Rollout) -> set[uuid.UUID]:
    """Devices whose desired model is the rollout's."""
    return set(
        session.scalars(
            select(DesiredState.device_id).where(DesiredState.model_id == rollout.model_id)
        )
    )


def report(
    session: Session,
    device_ids: set[uuid.UUID] | list[uuid.UUID],
    model: ModelVersion,
    *,
    scored: int = 100,
    flagged: int = 1,
    load_failures: int = 0,
    p95: float = 2.0,
) -> None:
    """One telemetry window per device, as the ingest would store it."""
    now = utcnow()
    for device_id in device_ids:
        session.add(
            telemetry_window(
                device_id,
                model.label,
                scored=scored,
                flagged=flagged,
                sent_at=now,
                model_load_failures=load_failures,
                latency_p95_ms=p95,
                window_seconds=10.0,
            )
        )
    session.flush()


def start(session: Session, model: ModelVersion, **fields: Any) -> Rollout:
    data = RolloutCreate.model_validate(
        {"model_id": model.id, "steps": QUICK, "thresholds": THRESHOLDS} | fields
    )
    return rollouts_service.start_rollout(session, actor=TEST_ACTOR, data=data)


def test_start_through_the_api_assigns_the_first_step_cohort(
    client: TestClient,
    headers_for: Any,
    db_session: Session,
    fleet: list[uuid.UUID],
    stable: ModelVersion,
    candidate: ModelVersion,
) -> None:
    defaults = client.get("/api/v1/rollouts/defaults", headers=headers_for("viewer")).json()
    assert [step["percent"] for step in defaults["steps"]] == [5, 25, 50, 100]

    response = client.post(
        "/api/v1/rollouts", json={"model_id": str(candidate.id)}, headers=headers_for("operator")
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["state"], body["current_step"], body["target_size"]) == ("running", 0, 20)
    assert body["cohort_size"] == math.ceil(0.05 * 20)
    assert (body["model_label"], body["baseline_label"]) == (candidate.label, stable.label)
    assert candidate.stage is ModelStage.CANARY

    states = desired(db_session, fleet)
    on_candidate = [d for d, model_id in states.items() if model_id == candidate.id]
    assert len(on_candidate) == 1
    assert all(states[d] == stable.id for d in fleet if d not in on_candidate)

    timeline = client.get(
        f"/api/v1/rollouts/{body['id']}/timeline", headers=headers_for("viewer")
    ).json()
    assert [event["kind"] for event in timeline["items"]] == ["started", "step_started"]

    again = client.post(
        "/api/v1/rollouts", json={"model_id": str(candidate.id)}, headers=headers_for("operator")
    )
    assert again.status_code == 409
    assert body["id"] in again.json()["detail"]


@pytest.mark.parametrize(
    ("steps", "complaint"),
    [
        ([{"percent": 50}, {"percent": 25}, {"percent": 100}], "increase"),
        ([{"percent": 10}, {"percent": 50}], "100%"),
        ([{"percent": 0}, {"percent": 100}], "greater than 0"),
        ([], "at least 1"),
    ],
)
def test_bad_steps_are_refused_with_the_reason(
    client: TestClient,
    headers_for: Any,
    candidate: ModelVersion,
    steps: list[dict[str, Any]],
    complaint: str,
) -> None:
    response = client.post(
        "/api/v1/rollouts",
        json={"model_id": str(candidate.id), "steps": steps},
        headers=headers_for("operator"),
    )
    assert response.status_code == 422
    assert complaint in response.text


def test_only_a_candidate_rolls_out(
    client: TestClient, headers_for: Any, stable: ModelVersion
) -> None:
    response = client.post(
        "/api/v1/rollouts", json={"model_id": str(stable.id)}, headers=headers_for("operator")
    )
    assert response.status_code == 409
    assert "stable" in response.json()["detail"]
    missing = client.post(
        "/api/v1/rollouts", json={"model_id": str(uuid.uuid4())}, headers=headers_for("operator")
    )
    assert missing.status_code == 404


def test_cohorts_are_deterministic_and_steps_only_add_devices(
    db_session: Session, fleet: list[uuid.UUID], stable: ModelVersion, candidate: ModelVersion
) -> None:
    rollout = start(db_session, candidate)
    ranked = sorted(fleet, key=lambda d: rollouts_service.cohort_rank(rollout.id, d))
    first = cohort(db_session, rollout)
    assert first == set(ranked[:5])

    report(db_session, first, candidate)
    report(db_session, set(fleet) - first, stable)
    analysis = rollouts_service.advance(db_session, rollout)
    assert analysis.verdict == "pass", analysis.reason
    second = cohort(db_session, rollout)
    assert rollout.current_step == 1
    assert first < second
    assert second == set(ranked[:10])


def test_a_good_model_goes_through_every_step_and_becomes_stable(
    db_session: Session, fleet: list[uuid.UUID], stable: ModelVersion, candidate: ModelVersion
) -> None:
    rollout = start(db_session, candidate)
    for _ in QUICK:
        canary = cohort(db_session, rollout)
        report(db_session, canary, candidate)
        report(db_session, set(fleet) - canary, stable)
        assert rollouts_service.advance(db_session, rollout).verdict == "pass"
    assert rollout.state is RolloutState.SUCCEEDED
    assert (candidate.stage, stable.stage) == (ModelStage.STABLE, ModelStage.RETIRED)
    assert set(desired(db_session, fleet).values()) == {candidate.id}
    assert rollout.active_target_key is None
    kinds = [event.kind for event in rollouts_service.timeline(db_session, rollout.id)]
    assert kinds.count("step_started") == 3
    assert kinds.count("analysis_passed") == 3
    assert kinds[-1] == "promoted"


def test_a_model_that_flags_everything_is_rolled_back_at_the_first_step(
    db_session: Session, fleet: list[uuid.UUID], stable: ModelVersion
) -> None:
    bad = register_fixture_model(db_session, threshold=0.0)
    rollout = start(db_session, bad, steps=[{"percent": 25, "soak_seconds": 600}, *QUICK[1:]])
    canary = cohort(db_session, rollout)
    report(db_session, canary, bad, scored=100, flagged=100)
    report(db_session, set(fleet) - canary, stable, scored=100, flagged=1)

    analysis = rollouts_service.advance(db_session, rollout)
    assert analysis.verdict == "fail", "a failing check does not wait for the soak"
    assert rollout.state is RolloutState.ROLLED_BACK
    assert rollout.current_step == 0
    assert "flag_rate" in (rollout.decision or "")
    assert set(desired(db_session, fleet).values()) == {stable.id}
    assert bad.stage is ModelStage.RETIRED
    rolled_back = rollouts_service.timeline(db_session, rollout.id)[-1]
    assert rolled_back.kind == "rolled_back"
    failed = rolled_back.details["failed_checks"]
    assert [check["metric"] for check in failed] == ["flag_rate"]
    assert failed[0]["canary"] == 1.0
    assert failed[0]["stable"] == 0.01

    # The target is free again.
    assert start(db_session, register_fixture_model(db_session, fixture="mlp-2")).state is (
        RolloutState.RUNNING
    )


def test_load_failures_on_canary_devices_roll_back(
    db_session: Session, fleet: list[uuid.UUID], stable: ModelVersion, candidate: ModelVersion
) -> None:
    rollout = start(db_session, candidate)
    canary = cohort(db_session, rollout)
    # A device that cannot load the new model keeps reporting on the old one.
    report(db_session, canary, stable, load_failures=1)
    analysis = rollouts_service.advance(db_session, rollout)
    assert analysis.verdict == "fail"
    assert "model_load_failures" in analysis.reason
    assert rollout.state is RolloutState.ROLLED_BACK


def test_a_step_waits_for_its_soak_and_its_reporting_devices(
    db_session: Session, fleet: list[uuid.UUID], stable: ModelVersion, candidate: ModelVersion
) -> None:
    rollout = start(
        db_session,
        candidate,
        steps=[{"percent": 50, "soak_seconds": 60, "min_devices": 3}, {"percent": 100}],
    )
    canary = sorted(cohort(db_session, rollout))
    first = rollouts_service.advance(db_session, rollout)
    assert (first.verdict, first.required_devices) == ("wait", 3)
    assert "soaking" in first.reason

    later = rollout.step_started_at + timedelta(seconds=61)
    report(db_session, canary[:2], candidate)
    waiting = rollouts_service.advance(db_session, rollout, now=later)
    assert waiting.verdict == "wait"
    assert "2 of 3" in waiting.reason

    report(db_session, canary[2:3], candidate)
    assert rollouts_service.advance(db_session, rollout, now=later).verdict == "pass"
    assert rollout.current_step == 1
    charted = rollouts_service.analyses(db_session, rollout.id)
    assert [a.verdict for a in charted] == ["wait", "wait", "pass"]


def test_targets_name_clusters_or_labels(db_session: Session, candidate: ModelVersion) -> None:
    cluster = clusters_service.create_cluster(
        db_session, actor=TEST_ACTOR, data=ClusterCreate(name="eu-stores", kind="k3s-edge")
    )
    inside = {
        enroll_device(db_session, cluster_id=cluster.id, labels={"tier": "gold"}).device.id
        for _ in range(4)
    }
    outside = {enroll_device(db_session, labels={"tier": "gold"}).device.id for _ in range(4)}

    by_cluster = RolloutTarget(kind=TargetKind.CLUSTERS, cluster_ids=[cluster.id])
    assert set(rollouts_service.target_device_ids(db_session, by_cluster)) == inside
    by_label = RolloutTarget(kind=TargetKind.SELECTOR, labels={"tier": "gold"})
    assert set(rollouts_service.target_device_ids(db_session, by_label)) == inside | outside

    rollout = start(db_session, candidate, target=by_cluster.model_dump(mode="json"))
    assert cohort(db_session, rollout) <= inside
    assert rollout.target_size == 4
    # Another target is another rollout's business.
    other = register_fixture_model(db_session, fixture="mlp-2")
    assert start(db_session, other, target=by_label.model_dump(mode="json")).target_size == 8


def test_operators_pause_resume_promote_and_abort(
    client: TestClient,
    headers_for: Any,
    db_session: Session,
    fleet: list[uuid.UUID],
    stable: ModelVersion,
    candidate: ModelVersion,
) -> None:
    operator = headers_for("operator")
    rollout = start(db_session, candidate)
    url = f"/api/v1/rollouts/{rollout.id}"

    assert client.post(f"{url}/resume", headers=operator).status_code == 409
    paused = client.post(f"{url}/pause", headers=operator)
    assert paused.json()["state"] == "paused"
    assert rollouts_service.running_rollout_ids(db_session) == []
    assert client.post(f"{url}/resume", headers=operator).json()["state"] == "running"

    aborted = client.post(f"{url}/abort", headers=operator).json()
    assert aborted["state"] == "aborted"
    assert set(desired(db_session, fleet).values()) == {stable.id}
    assert candidate.stage is ModelStage.CANDIDATE, "an aborted model may be tried again"
    assert client.post(f"{url}/promote", headers=operator).status_code == 409

    retry = start(db_session, candidate)
    promoted = client.post(f"/api/v1/rollouts/{retry.id}/promote", headers=operator).json()
    assert promoted["state"] == "succeeded"
    assert set(desired(db_session, fleet).values()) == {candidate.id}
    kinds = [
        e["kind"]
        for e in client.get(f"/api/v1/rollouts/{retry.id}/timeline", headers=operator).json()[
            "items"
        ]
    ]
    assert kinds == ["started", "step_started", "promoted"]

    listed = client.get("/api/v1/rollouts?state=aborted", headers=headers_for("viewer")).json()
    assert [item["id"] for item in listed["items"]] == [str(rollout.id)]


def test_unknown_rollout_is_404(client: TestClient, headers_for: Any) -> None:
    missing = uuid.uuid4()
    assert (
        client.get(f"/api/v1/rollouts/{missing}", headers=headers_for("viewer")).status_code == 404
    )
    assert (
        client.post(
            f"/api/v1/rollouts/{missing}/pause", headers=headers_for("operator")
        ).status_code
        == 404
    )


def test_step_schema_defaults() -> None:
    step = RolloutStep(percent=5)
    assert (step.soak_seconds, step.min_devices) == (300, 1)
