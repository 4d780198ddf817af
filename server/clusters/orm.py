from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import JSON, Enum, String
from sqlalchemy.orm import Mapped, mapped_column

from server.core.db import Base, utcnow
from server.core.security import EncryptedText


class ClusterKind(StrEnum):
    K3S_EDGE = "k3s-edge"
    EKS = "eks"
    AKS = "aks"


class ClusterStatus(StrEnum):
    PENDING = "pending"
    READY = "ready"
    UNREACHABLE = "unreachable"


def _values(enum: type[StrEnum]) -> list[str]:
    return [member.value for member in enum]


class Cluster(Base):
    __tablename__ = "clusters"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[ClusterKind] = mapped_column(
        Enum(
            ClusterKind, name="cluster_kind", native_enum=False, length=16, values_callable=_values
        )
    )
    region: Mapped[str] = mapped_column(String(64), default="")
    labels: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    api_server_url: Mapped[str | None] = mapped_column(String(512))
    kubeconfig: Mapped[str | None] = mapped_column(EncryptedText())
    status: Mapped[ClusterStatus] = mapped_column(
        Enum(
            ClusterStatus,
            name="cluster_status",
            native_enum=False,
            length=16,
            values_callable=_values,
        ),
        default=ClusterStatus.PENDING,
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
