from __future__ import annotations

import uuid
from typing import Annotated

from asgi_correlation_id import correlation_id
from fastapi import APIRouter, Depends, Query, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from server.auth.deps import DeviceActor, OperatorActor, ViewerActor, client_ip
from server.common.pagination import PageParams, page_params
from server.core.config import get_settings
from server.core.db import SessionDep, utcnow
from server.core.errors import InvalidInput
from server.devices import service as devices_service
from server.devices.deps import DeviceDep
from server.devices.exceptions import EnrollmentRefused
from server.devices.orm import DeviceStatus
from server.devices.schemas import (
    DeviceList,
    DeviceRead,
    DeviceStatusCounts,
    DeviceSummary,
    DeviceUpdate,
    EnrollmentTokenCreate,
    EnrollmentTokenCreated,
    EnrollmentTokenList,
    EnrollmentTokenRead,
    EnrollRequest,
    EnrollResponse,
    HeartbeatRequest,
    HeartbeatResponse,
    ModelVersionCount,
    MqttConnectionInfo,
)

router = APIRouter(tags=["devices"])
agent_router = APIRouter(prefix="/agent", tags=["agent"])
enrollment_router = APIRouter(prefix="/agent", tags=["agent"])

_enrollment_bearer = HTTPBearer(auto_error=False, description="A one-time enrollment token.")


@router.get("/devices", operation_id="devices-list", response_model=DeviceList)
def list_devices(
    session: SessionDep,
    _: ViewerActor,
    page: Annotated[PageParams, Depends(page_params)],
    cluster_id: uuid.UUID | None = None,
    status_filter: Annotated[DeviceStatus | None, Query(alias="status")] = None,
    model_version: str | None = None,
    label: Annotated[str | None, Query(description="key=value", max_length=200)] = None,
    name_prefix: Annotated[str | None, Query(max_length=128)] = None,
) -> DeviceList:
    label_pair: tuple[str, str] | None = None
    if label is not None:
        key, sep, value = label.partition("=")
        if not sep or not key:
            raise InvalidInput("label must look like key=value")
        label_pair = (key, value)
    filters = devices_service.DeviceFilters(
        cluster_id=cluster_id,
        status=status_filter,
        model_version=model_version,
        label=label_pair,
        name_prefix=name_prefix,
    )
    items, cursor = devices_service.list_devices(session, filters=filters, params=page)
    return DeviceList(items=[DeviceRead.model_validate(d) for d in items], next_cursor=cursor)


# Declared before /devices/{device_id}, which would otherwise take "summary" for an id.
@router.get("/devices/summary", operation_id="devices-summary", response_model=DeviceSummary)
def summarize_devices(session: SessionDep, _: ViewerActor) -> DeviceSummary:
    """Fleet counts by status and by model version, for dashboards."""
    summary = devices_service.summarize(session)
    return DeviceSummary(
        total=summary.total,
        by_status=DeviceStatusCounts(**{s.value: n for s, n in summary.by_status.items()}),
        by_model_version=[ModelVersionCount.model_validate(u) for u in summary.by_model_version],
    )


@router.get("/devices/{device_id}", operation_id="devices-get", response_model=DeviceRead)
def get_device(_: ViewerActor, device: DeviceDep) -> DeviceRead:
    return DeviceRead.model_validate(device)


@router.patch("/devices/{device_id}", operation_id="devices-update", response_model=DeviceRead)
def update_device(
    session: SessionDep, actor: OperatorActor, device: DeviceDep, body: DeviceUpdate
) -> DeviceRead:
    updated = devices_service.update_device(session, actor=actor, device_id=device.id, data=body)
    return DeviceRead.model_validate(updated)


@router.post(
    "/devices/{device_id}/revoke", operation_id="devices-revoke", response_model=DeviceRead
)
def revoke_device(session: SessionDep, actor: OperatorActor, device: DeviceDep) -> DeviceRead:
    revoked = devices_service.revoke_device(session, actor=actor, device_id=device.id)
    return DeviceRead.model_validate(revoked)


@router.get(
    "/enrollment-tokens", operation_id="enrollment-tokens-list", response_model=EnrollmentTokenList
)
def list_enrollment_tokens(
    session: SessionDep, _: OperatorActor, include_used: bool = False
) -> EnrollmentTokenList:
    tokens = devices_service.list_enrollment_tokens(session, include_used=include_used)
    return EnrollmentTokenList(items=[EnrollmentTokenRead.model_validate(t) for t in tokens])


@router.post(
    "/enrollment-tokens",
    operation_id="enrollment-tokens-create",
    response_model=EnrollmentTokenCreated,
    status_code=status.HTTP_201_CREATED,
)
def create_enrollment_token(
    session: SessionDep, actor: OperatorActor, body: EnrollmentTokenCreate
) -> EnrollmentTokenCreated:
    issued = devices_service.create_enrollment_token(session, actor=actor, data=body)
    return EnrollmentTokenCreated(
        **EnrollmentTokenRead.model_validate(issued.record).model_dump(), token=issued.token
    )


@router.delete(
    "/enrollment-tokens/{token_id}",
    operation_id="enrollment-tokens-revoke",
    response_model=EnrollmentTokenRead,
)
def revoke_enrollment_token(
    session: SessionDep, actor: OperatorActor, token_id: uuid.UUID
) -> EnrollmentTokenRead:
    record = devices_service.revoke_enrollment_token(session, actor=actor, token_id=token_id)
    return EnrollmentTokenRead.model_validate(record)


@enrollment_router.post(
    "/enroll",
    operation_id="agent-enroll",
    response_model=EnrollResponse,
    status_code=status.HTTP_201_CREATED,
)
def enroll(
    request: Request,
    session: SessionDep,
    body: EnrollRequest,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_enrollment_bearer)],
) -> EnrollResponse:
    """A new device spends its one-time enrollment token (as the bearer) on its own credential."""
    if bearer is None:
        raise EnrollmentRefused("send the enrollment token as 'Authorization: Bearer <token>'")
    enrollment = devices_service.enroll(
        session,
        token=bearer.credentials,
        data=body,
        ip=client_ip(request),
        request_id=correlation_id.get(),
    )
    settings = get_settings()
    device_id = enrollment.device.id
    return EnrollResponse(
        device_id=device_id,
        credential=enrollment.credential,
        mqtt=MqttConnectionInfo(
            host=settings.mqtt.host,
            port=settings.mqtt_port,
            tls=settings.mqtt.tls,
            username=str(device_id),
            topic_prefix=f"edgeplane/v1/devices/{device_id}",
        ),
        heartbeat_interval_seconds=settings.devices.heartbeat_interval_seconds,
    )


@agent_router.get("/self", operation_id="agent-self", response_model=DeviceRead)
def agent_self(session: SessionDep, actor: DeviceActor) -> DeviceRead:
    assert actor.id is not None
    return DeviceRead.model_validate(devices_service.get_device(session, actor.id))


@agent_router.post("/heartbeat", operation_id="agent-heartbeat", response_model=HeartbeatResponse)
def heartbeat(session: SessionDep, actor: DeviceActor, body: HeartbeatRequest) -> HeartbeatResponse:
    assert actor.id is not None
    devices_service.record_heartbeat(session, device_id=actor.id, data=body)
    return HeartbeatResponse(
        heartbeat_interval_seconds=get_settings().devices.heartbeat_interval_seconds,
        server_time=utcnow(),
    )
