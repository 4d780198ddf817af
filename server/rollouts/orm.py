from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey
from sqlalchemy.orm import Mapped, mapped_column

from server.core.db import Base, utcnow


class DesiredState(Base):
    """The model a device should run. ``generation`` grows with every change, so a
    device can ignore a stale message that arrives late."""

    __tablename__ = "desired_states"

    device_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("devices.id", ondelete="CASCADE"), primary_key=True
    )
    model_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("model_versions.id"), index=True)
    rollout_id: Mapped[uuid.UUID | None]
    generation: Mapped[int] = mapped_column(default=0)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
