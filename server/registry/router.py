from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, File, Form, Response, UploadFile, status
from pydantic import ValidationError

from server.auth.deps import AdminActor, DeviceActor, OperatorActor, ViewerActor
from server.common.pagination import PageParams, page_params
from server.core.db import SessionDep
from server.core.errors import InvalidInput
from server.registry import service as registry_service
from server.registry.deps import ModelDep
from server.registry.exceptions import ModelRejected
from server.registry.orm import ModelStage
from server.registry.schemas import (
    ModelMetadata,
    ModelVersionList,
    ModelVersionRead,
    SigningKeyList,
    SigningKeyRead,
)

router = APIRouter(tags=["models"])
agent_router = APIRouter(prefix="/agent", tags=["agent"])

ArtifactFile = Literal["model.tflite", "manifest.json", "manifest.sig"]
_MEDIA_TYPES = {
    "model.tflite": "application/octet-stream",
    "manifest.json": "application/json",
    "manifest.sig": "text/plain",
}


@router.get("/models", operation_id="models-list", response_model=ModelVersionList)
def list_models(
    session: SessionDep,
    _: ViewerActor,
    page: Annotated[PageParams, Depends(page_params)],
    name: str | None = None,
    stage: ModelStage | None = None,
) -> ModelVersionList:
    items, cursor = registry_service.list_models(session, params=page, name=name, stage=stage)
    return ModelVersionList(
        items=[ModelVersionRead.model_validate(m) for m in items], next_cursor=cursor
    )


@router.post(
    "/models",
    operation_id="models-upload",
    response_model=ModelVersionRead,
    status_code=status.HTTP_201_CREATED,
)
async def upload_model(
    session: SessionDep,
    actor: OperatorActor,
    model: Annotated[UploadFile, File(description="model.tflite")],
    metadata: Annotated[str, Form(description="ModelMetadata as JSON.")],
) -> ModelVersionRead:
    """Register a model trained elsewhere. It is checked before it is accepted."""
    try:
        parsed = ModelMetadata.model_validate_json(metadata)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise InvalidInput(f"metadata.{where}: {first['msg']}" if where else first["msg"]) from exc
    model_bytes = await model.read(registry_service.MAX_MODEL_BYTES + 1)
    if len(model_bytes) > registry_service.MAX_MODEL_BYTES:
        raise ModelRejected("the model file is too large")
    registered = registry_service.register_model(
        session, actor=actor, model_bytes=model_bytes, metadata=parsed, source="upload"
    )
    return ModelVersionRead.model_validate(registered)


@router.get("/models/{model_id}", operation_id="models-get", response_model=ModelVersionRead)
def get_model(_: ViewerActor, model: ModelDep) -> ModelVersionRead:
    return ModelVersionRead.model_validate(model)


@router.get(
    "/models/{model_id}/files/{filename}", operation_id="models-file", response_class=Response
)
def model_file(_: ViewerActor, model: ModelDep, filename: ArtifactFile) -> Response:
    return Response(
        registry_service.artifact_file(model, filename), media_type=_MEDIA_TYPES[filename]
    )


@router.post(
    "/models/{model_id}/retire", operation_id="models-retire", response_model=ModelVersionRead
)
def retire_model(session: SessionDep, actor: OperatorActor, model: ModelDep) -> ModelVersionRead:
    retired = registry_service.retire_model(session, actor=actor, model_id=model.id)
    return ModelVersionRead.model_validate(retired)


@router.get("/signing-keys", operation_id="signing-keys-list", response_model=SigningKeyList)
def list_signing_keys(
    session: SessionDep, _: ViewerActor, include_retired: bool = False
) -> SigningKeyList:
    registry_service.active_signing_key(session)
    keys = registry_service.list_signing_keys(session, include_retired=include_retired)
    return SigningKeyList(items=[SigningKeyRead.model_validate(k) for k in keys])


@router.post(
    "/signing-keys/rotate", operation_id="signing-keys-rotate", response_model=SigningKeyRead
)
def rotate_signing_key(session: SessionDep, actor: AdminActor) -> SigningKeyRead:
    return SigningKeyRead.model_validate(registry_service.rotate_signing_key(session, actor=actor))


@router.delete(
    "/signing-keys/{key_id}", operation_id="signing-keys-retire", response_model=SigningKeyRead
)
def retire_signing_key(session: SessionDep, actor: AdminActor, key_id: uuid.UUID) -> SigningKeyRead:
    key = registry_service.retire_signing_key(session, actor=actor, key_id=key_id)
    return SigningKeyRead.model_validate(key)


@agent_router.get("/trusted-keys", operation_id="agent-trusted-keys", response_model=list[str])
def trusted_keys(session: SessionDep, _: DeviceActor) -> list[str]:
    """Public keys (base64, raw Ed25519) whose signatures this device may trust."""
    return registry_service.trusted_public_keys(session)


@agent_router.get(
    "/models/{model_id}/files/{filename}",
    operation_id="agent-model-file",
    response_class=Response,
)
def agent_model_file(_: DeviceActor, model: ModelDep, filename: ArtifactFile) -> Response:
    """Devices download artifacts here, with their own credential; there is no open bucket."""
    return Response(
        registry_service.artifact_file(model, filename), media_type=_MEDIA_TYPES[filename]
    )
