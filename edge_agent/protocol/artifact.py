"""The model artifact: ``model.tflite``, ``manifest.json`` and an Ed25519 signature.

The signature covers the exact bytes of ``manifest.json``; the manifest holds the
sha256 of the ``.tflite``. An agent verifies the signature with the control plane's
public key, then the hash, then that it implements the manifest's feature-spec
version, before it loads anything.
"""

from __future__ import annotations

import base64
import hashlib
from datetime import datetime
from typing import Final, Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

MODEL_FILE: Final = "model.tflite"
MANIFEST_FILE: Final = "manifest.json"
SIGNATURE_FILE: Final = "manifest.sig"


class ArtifactError(ValueError):
    """The artifact is not one this agent may load; the message says why."""


class TrainingDataRange(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    start: AwareDatetime
    end: AwareDatetime
    rows: int = Field(ge=0)


class ModelManifest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, protected_namespaces=())

    schema_version: Literal[1] = 1
    name: str
    version: str = Field(min_length=1, max_length=64)
    feature_spec_version: int = Field(ge=1)
    input_shape: list[int]
    output_shape: list[int]
    input_dtype: Literal["float32"] = "float32"
    quantization: Literal["float32", "int8"]
    threshold: float = Field(ge=0.0, le=1.0)
    tflite_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    training_data: TrainingDataRange
    metrics: dict[str, float] = Field(default_factory=dict)
    created_at: datetime


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def encode_signature(signature: bytes) -> str:
    return base64.b64encode(signature).decode()


def verify_artifact(
    *,
    manifest_bytes: bytes,
    signature_b64: str,
    model_bytes: bytes,
    public_keys: list[Ed25519PublicKey],
    supported_feature_spec_versions: frozenset[int],
) -> ModelManifest:
    """The manifest of a verified artifact, or ArtifactError saying what is wrong.

    Several public keys may be trusted at once, so that signing keys can be rotated.
    """
    try:
        signature = base64.b64decode(signature_b64, validate=True)
    except ValueError as exc:
        raise ArtifactError("signature is not base64") from exc
    for key in public_keys:
        try:
            key.verify(signature, manifest_bytes)
            break
        except InvalidSignature:
            continue
    else:
        raise ArtifactError("signature does not match any trusted control-plane key")
    try:
        manifest = ModelManifest.model_validate_json(manifest_bytes)
    except ValueError as exc:
        raise ArtifactError(f"manifest is malformed: {exc}") from exc
    if sha256_hex(model_bytes) != manifest.tflite_sha256:
        raise ArtifactError("model.tflite does not match the sha256 in its manifest")
    if manifest.feature_spec_version not in supported_feature_spec_versions:
        raise ArtifactError(
            f"model needs feature spec v{manifest.feature_spec_version}; this agent implements "
            f"{sorted(supported_feature_spec_versions)}"
        )
    return manifest
