from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends, Path

from server.core.db import SessionDep
from server.rollouts import service as rollouts_service
from server.rollouts.orm import Rollout


def load_rollout(session: SessionDep, rollout_id: Annotated[uuid.UUID, Path()]) -> Rollout:
    return rollouts_service.get_rollout(session, rollout_id)


RolloutDep = Annotated[Rollout, Depends(load_rollout)]
