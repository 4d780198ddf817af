from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import JSON, String
from sqlalchemy.orm import Mapped, mapped_column

from server.core.db import Base, str_enum, utcnow
from server.core.security import EncryptedText


class ClusterKind(StrEnum):
    K3S_EDGE = "k3s-edge"
    EKS = "eks"
    AKS = "aks"


class ClusterStatus(StrEnum):
    PENDING = "pending"
    READY = "ready"
    UNREACHABLE = "unreachable"


class Cluster(Base):
    __tablename__ = "clusters"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[ClusterKind] = mapped_column(str_enum(ClusterKind, "cluster_kind"))
    region: Mapped[str] = mapped_column(String(64), default="")
    labels: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    api_server_url: Mapped[str | None] = mapped_column(String(512))
    kubeconfig: Mapped[str | None] = mapped_column(EncryptedText())
    status: Mapped[ClusterStatus] = mapped_column(
        str_enum(ClusterStatus, "cluster_status"),
        default=ClusterStatus.PENDING,
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
