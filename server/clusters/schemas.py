from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import Field, HttpUrl

from server.clusters.orm import ClusterKind, ClusterStatus
from server.common.schemas import ReadModel, RequestModel

CLUSTER_NAME = r"^[a-z0-9]([a-z0-9-]{0,62}[a-z0-9])?$"


class ClusterCreate(RequestModel):
    name: str = Field(pattern=CLUSTER_NAME, description="DNS-style name, unique.")
    kind: ClusterKind
    region: str = Field(default="", max_length=64)
    labels: dict[str, str] = Field(default_factory=dict)
    api_server_url: HttpUrl | None = None
    kubeconfig: str | None = Field(
        default=None, max_length=256_000, description="Stored encrypted; never returned."
    )


class ClusterUpdate(RequestModel):
    region: str | None = Field(default=None, max_length=64)
    labels: dict[str, str] | None = None
    api_server_url: HttpUrl | None = None
    kubeconfig: str | None = Field(default=None, max_length=256_000)


class ClusterRead(ReadModel):
    id: uuid.UUID
    name: str
    kind: ClusterKind
    region: str
    labels: dict[str, str]
    api_server_url: str | None
    has_kubeconfig: bool
    status: ClusterStatus
    created_at: datetime
    updated_at: datetime


class ClusterList(ReadModel):
    items: list[ClusterRead]
