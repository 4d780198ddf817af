from __future__ import annotations

from fastapi import APIRouter

from edge_agent.protocol.messages import DesiredState as DesiredStateMessage
from server.auth.deps import DeviceActor, OperatorActor, ViewerActor
from server.core.db import SessionDep
from server.devices.deps import DeviceDep
from server.rollouts import service as rollouts_service
from server.rollouts.schemas import DesiredModelUpdate

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
