from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, status

from server.auth.deps import OperatorActor, ViewerActor
from server.common.pagination import PageParams, page_params
from server.core.db import SessionDep
from server.training import runs as runs_service
from server.training.orm import RunState, RunTrigger
from server.training.schemas import TrainingRunCreate, TrainingRunList, TrainingRunRead

router = APIRouter(prefix="/training", tags=["training"])


@router.post(
    "/runs",
    operation_id="training-runs-create",
    response_model=TrainingRunRead,
    status_code=status.HTTP_202_ACCEPTED,
)
def create_run(
    session: SessionDep, actor: OperatorActor, data: TrainingRunCreate
) -> TrainingRunRead:
    """Retrain now. The run is queued for the worker; while another run is running it is
    recorded as skipped instead, with that run as the reason."""
    run = runs_service.request_run(
        session,
        actor=actor,
        trigger=RunTrigger.ON_DEMAND,
        window_start=data.window_start,
        window_end=data.window_end,
        note=data.note,
    )
    return runs_service.to_read(session, [run])[0]


@router.get("/runs", operation_id="training-runs-list", response_model=TrainingRunList)
def list_runs(
    session: SessionDep,
    _: ViewerActor,
    page: Annotated[PageParams, Depends(page_params)],
    trigger: RunTrigger | None = None,
    state: RunState | None = None,
) -> TrainingRunList:
    items, cursor = runs_service.list_runs(session, params=page, trigger=trigger, state=state)
    return TrainingRunList(items=runs_service.to_read(session, items), next_cursor=cursor)


@router.get("/runs/{run_id}", operation_id="training-runs-get", response_model=TrainingRunRead)
def get_run(session: SessionDep, _: ViewerActor, run_id: uuid.UUID) -> TrainingRunRead:
    return runs_service.to_read(session, [runs_service.get_run(session, run_id)])[0]
