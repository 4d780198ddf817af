from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import AwareDatetime, Field

from edge_agent.protocol.artifact import ModelManifest
from server.common.schemas import ReadModel, RequestModel
from server.registry.orm import ModelStage

MODEL_NAME = r"^[a-z][a-z0-9-]{0,47}$"


class ModelMetadata(RequestModel):
    """What a model trained elsewhere must say about itself when it is uploaded."""

    name: str = Field(default="fraud", pattern=MODEL_NAME)
    feature_spec_version: int = Field(ge=1)
    threshold: float = Field(ge=0.0, le=1.0, description="Scores at or above it are flagged.")
    quantization: Literal["float32", "int8"] = "float32"
    training_start: AwareDatetime
    training_end: AwareDatetime
    training_rows: int = Field(ge=0)
    metrics: dict[str, float] = Field(default_factory=dict)
    parent_version_id: uuid.UUID | None = None
    dataset_snapshot: str | None = Field(default=None, max_length=256)
    code_version: str | None = Field(default=None, max_length=64)

    @classmethod
    def from_manifest(cls, manifest: ModelManifest, **fields: Any) -> ModelMetadata:
        """What an artifact's own manifest says about it, ``fields`` taking precedence."""
        return cls.model_validate(
            {
                "name": manifest.name,
                "feature_spec_version": manifest.feature_spec_version,
                "threshold": manifest.threshold,
                "quantization": manifest.quantization,
                "training_start": manifest.training_data.start,
                "training_end": manifest.training_data.end,
                "training_rows": manifest.training_data.rows,
                "metrics": manifest.metrics,
            }
            | fields
        )


class ModelVersionRead(ReadModel):
    id: uuid.UUID
    name: str
    version: int
    label: str
    stage: ModelStage
    feature_spec_version: int
    quantization: str
    threshold: float
    sha256: str
    size_bytes: int
    signature: str
    signing_key_id: uuid.UUID
    metrics: dict[str, float]
    lineage: dict[str, Any]
    created_at: datetime
    created_by: str


class ModelVersionList(ReadModel):
    items: list[ModelVersionRead]
    next_cursor: str | None


class SigningKeyRead(ReadModel):
    id: uuid.UUID
    public_key: str = Field(description="Base64 of the raw 32-byte Ed25519 public key.")
    is_active: bool
    created_at: datetime
    retired_at: datetime | None


class SigningKeyList(ReadModel):
    items: list[SigningKeyRead]
