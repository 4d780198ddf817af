"""Factories that build data through the services, as the app would."""

from __future__ import annotations

import secrets
import uuid

from sqlalchemy.orm import Session

from server.common.actor import Actor
from server.devices import service as devices_service
from server.devices.schemas import EnrollmentTokenCreate, EnrollRequest

TEST_ACTOR = Actor.system("test")


def enroll_device(
    session: Session,
    *,
    name: str | None = None,
    cluster_id: uuid.UUID | None = None,
    labels: dict[str, str] | None = None,
) -> devices_service.Enrollment:
    """A device enrolled with a fresh one-time token: the device and its credential."""
    issued = devices_service.create_enrollment_token(
        session,
        actor=TEST_ACTOR,
        data=EnrollmentTokenCreate(cluster_id=cluster_id, labels=labels or {}),
    )
    return devices_service.enroll(
        session,
        token=issued.token,
        data=EnrollRequest(name=name or f"pos-{secrets.token_hex(3)}"),
        ip="127.0.0.1",
        request_id=None,
    )
