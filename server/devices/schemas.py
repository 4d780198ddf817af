from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import Field

from server.common.schemas import ReadModel, RequestModel
from server.devices.orm import DeviceStatus

LABEL_KEY = r"^[A-Za-z0-9][A-Za-z0-9_.\-/]{0,62}$"
Labels = dict[str, str]


class EnrollmentTokenCreate(RequestModel):
    description: str = Field(default="", max_length=256)
    cluster_id: uuid.UUID | None = None
    labels: Labels = Field(default_factory=dict, description="Given to the device that enrolls.")
    expires_in_hours: int | None = Field(default=None, ge=1, le=24 * 30)


class EnrollmentTokenRead(ReadModel):
    id: uuid.UUID
    display_prefix: str
    description: str
    cluster_id: uuid.UUID | None
    labels: Labels
    created_by: str
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None
    device_id: uuid.UUID | None
    revoked_at: datetime | None


class EnrollmentTokenCreated(EnrollmentTokenRead):
    token: str = Field(description="Give this to one device. Shown once; works once.")


class EnrollmentTokenList(ReadModel):
    items: list[EnrollmentTokenRead]


class EnrollRequest(RequestModel):
    name: str = Field(min_length=1, max_length=128, description="Host name of the device.")
    agent_version: str | None = Field(default=None, max_length=64)


class MqttConnectionInfo(ReadModel):
    host: str
    port: int
    tls: bool
    username: str
    topic_prefix: str


class EnrollResponse(ReadModel):
    device_id: uuid.UUID
    credential: str = Field(description="The device's bearer token and MQTT password. Shown once.")
    mqtt: MqttConnectionInfo
    heartbeat_interval_seconds: int


class DeviceUpdate(RequestModel):
    name: str | None = Field(default=None, min_length=1, max_length=128)
    cluster_id: uuid.UUID | None = None
    labels: Labels | None = None


class DeviceRead(ReadModel):
    id: uuid.UUID
    name: str
    cluster_id: uuid.UUID | None
    labels: Labels
    status: DeviceStatus
    agent_version: str | None
    model_version: str | None
    health: dict[str, Any]
    enrolled_at: datetime
    last_seen_at: datetime | None
    revoked_at: datetime | None


class DeviceList(ReadModel):
    items: list[DeviceRead]
    next_cursor: str | None


class DeviceStatusCounts(ReadModel):
    online: int
    offline: int
    revoked: int


class ModelVersionCount(ReadModel):
    model_version: str | None = Field(description="null: the device has reported no model yet.")
    devices: int
    online: int


class DeviceSummary(ReadModel):
    total: int
    by_status: DeviceStatusCounts
    by_model_version: list[ModelVersionCount] = Field(
        description="Devices that are not revoked, by the model they run; most used first."
    )


class HeartbeatRequest(RequestModel):
    agent_version: str | None = Field(default=None, max_length=64)
    model_version: str | None = Field(default=None, max_length=64)
    health: dict[str, Any] = Field(default_factory=dict)


class HeartbeatResponse(ReadModel):
    heartbeat_interval_seconds: int
    server_time: datetime
