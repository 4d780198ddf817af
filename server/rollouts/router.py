from __future__ import annotations

import uuid
from typing import Annotated, Protocol

from fastapi import APIRouter, Depends, status
from sqlalchemy.orm import Session

from edge_agent.protocol.messages import DesiredState as DesiredStateMessage
from server.auth.deps import DeviceActor, OperatorActor, ViewerActor
from server.common.actor import Actor
from server.common.pagination import PageParams, page_params
from server.core.db import SessionDep
from server.devices.deps import DeviceDep
from server.rollouts import service as rollouts_service
from server.rollouts.deps import RolloutDep
from server.rollouts.orm import Rollout, RolloutState
from server.rollouts.schemas import (
    DesiredModelUpdate,
    RolloutAnalyses,
    RolloutCreate,
    RolloutDefaults,
    RolloutList,
    RolloutRead,
    RolloutTimeline,
)

router = APIRouter(tags=["rollouts"])
agent_router = APIRouter(prefix="/agent", tags=["agent"])


@router.get(
    "/devices/{device_id}/desired",
    operation_id="rollouts-desired-get",
    response_model=DesiredStateMessage,
)
def get_desired(session: SessionDep, _: ViewerActor, device: DeviceDep) -> DesiredStateMessage:
    return rollouts_service.desired_for_device(session, device.id)


@router.put(
    "/devices/{device_id}/desired",
    operation_id="rollouts-desired-set",
    response_model=DesiredStateMessage,
)
def set_desired(
    session: SessionDep, actor: OperatorActor, device: DeviceDep, body: DesiredModelUpdate
) -> DesiredStateMessage:
    """Pin one device to a model (or to none), outside any rollout."""
    rollouts_service.assign_model(
        session, actor=actor, device_ids=[device.id], model_id=body.model_id
    )
    return rollouts_service.desired_for_device(session, device.id)


@agent_router.get("/desired", operation_id="agent-desired", response_model=DesiredStateMessage)
def agent_desired(session: SessionDep, actor: DeviceActor) -> DesiredStateMessage:
    """This device's desired state: the fallback to its retained MQTT message."""
    assert actor.id is not None
    return rollouts_service.desired_for_device(session, actor.id)


@router.get("/rollouts/defaults", operation_id="rollouts-defaults", response_model=RolloutDefaults)
def rollout_defaults(_: ViewerActor) -> RolloutDefaults:
    """The steps and thresholds a rollout gets when the request leaves them out."""
    return rollouts_service.defaults()


@router.get("/rollouts", operation_id="rollouts-list", response_model=RolloutList)
def list_rollouts(
    session: SessionDep,
    _: ViewerActor,
    page: Annotated[PageParams, Depends(page_params)],
    state: RolloutState | None = None,
) -> RolloutList:
    items, cursor = rollouts_service.list_rollouts(session, params=page, state=state)
    return RolloutList(items=rollouts_service.to_read(session, items), next_cursor=cursor)


@router.post(
    "/rollouts",
    operation_id="rollouts-create",
    response_model=RolloutRead,
    status_code=status.HTTP_201_CREATED,
)
def create_rollout(session: SessionDep, actor: OperatorActor, body: RolloutCreate) -> RolloutRead:
    """Start a rollout; its first step's devices are assigned the model at once."""
    rollout = rollouts_service.start_rollout(session, actor=actor, data=body)
    return rollouts_service.to_read(session, [rollout])[0]


@router.get("/rollouts/{rollout_id}", operation_id="rollouts-get", response_model=RolloutRead)
def get_rollout(session: SessionDep, _: ViewerActor, rollout: RolloutDep) -> RolloutRead:
    return rollouts_service.to_read(session, [rollout])[0]


@router.get(
    "/rollouts/{rollout_id}/timeline",
    operation_id="rollouts-timeline",
    response_model=RolloutTimeline,
)
def rollout_timeline(session: SessionDep, _: ViewerActor, rollout_id: uuid.UUID) -> RolloutTimeline:
    return RolloutTimeline(items=rollouts_service.timeline(session, rollout_id))


@router.get(
    "/rollouts/{rollout_id}/analyses",
    operation_id="rollouts-analyses",
    response_model=RolloutAnalyses,
)
def rollout_analyses(session: SessionDep, _: ViewerActor, rollout_id: uuid.UUID) -> RolloutAnalyses:
    """Every analysis, oldest first (the newest 500): canary against stable over time."""
    return RolloutAnalyses(items=rollouts_service.analyses(session, rollout_id))


class Action(Protocol):
    def __call__(self, session: Session, *, actor: Actor, rollout_id: uuid.UUID) -> Rollout: ...


def _action_route(name: str, action: Action, summary: str) -> None:
    def handler(session: SessionDep, actor: OperatorActor, rollout_id: uuid.UUID) -> RolloutRead:
        rollout = action(session, actor=actor, rollout_id=rollout_id)
        return rollouts_service.to_read(session, [rollout])[0]

    router.add_api_route(
        f"/rollouts/{{rollout_id}}/{name}",
        handler,
        methods=["POST"],
        operation_id=f"rollouts-{name}",
        response_model=RolloutRead,
        summary=summary,
    )


_action_route("pause", rollouts_service.pause, "Hold the rollout at its current step")
_action_route("resume", rollouts_service.resume, "Let a paused rollout go on")
_action_route("promote", rollouts_service.promote, "Give every target device the model now")
_action_route("abort", rollouts_service.abort, "Stop and send canary devices back to stable")
