from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends, Path

from server.core.db import SessionDep
from server.registry import service as registry_service
from server.registry.orm import ModelVersion


def load_model(session: SessionDep, model_id: Annotated[uuid.UUID, Path()]) -> ModelVersion:
    return registry_service.get_model(session, model_id)


ModelDep = Annotated[ModelVersion, Depends(load_model)]
