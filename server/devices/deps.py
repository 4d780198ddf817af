from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends, Path

from server.core.db import SessionDep
from server.devices import service as devices_service
from server.devices.orm import Device


def load_device(session: SessionDep, device_id: Annotated[uuid.UUID, Path()]) -> Device:
    return devices_service.get_device(session, device_id)


DeviceDep = Annotated[Device, Depends(load_device)]
