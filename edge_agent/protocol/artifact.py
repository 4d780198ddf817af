"""The model artifact: ``model.tflite``, ``manifest.json`` and an Ed25519 signature.

The signature covers the exact bytes of ``manifest.json``; the manifest holds the
sha256 of the ``.tflite``. An agent verifies the signature with the control plane's
public key, then the hash, then that it implements the manifest's feature-spec
version, before it loads anything.
"""

from __future__ import annotations

import base64
import hashlib
import os
from datetime import datetime
from pathlib import Path
from typing import Final, Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
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


def sign_manifest(manifest_bytes: bytes, private_key: Ed25519PrivateKey) -> str:
    """Base64 Ed25519 signature over the exact manifest bytes, as agents verify it."""
    return encode_signature(private_key.sign(manifest_bytes))


def manifest_bytes_of(manifest: ModelManifest) -> bytes:
    """The canonical bytes of a manifest: what is written to disk and signed."""
    return manifest.model_dump_json(indent=2).encode() + b"\n"


def _write_file(path: Path, data: bytes) -> None:
    """Write through a temporary name and rename, so a reader never sees half a file."""
    temporary = path.with_name(f".{path.name}.tmp")
    with temporary.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    temporary.replace(path)


def write_artifact(
    directory: Path,
    *,
    model_bytes: bytes,
    manifest: ModelManifest,
    private_key: Ed25519PrivateKey,
) -> str:
    """Write ``model.tflite``, ``manifest.json`` and ``manifest.sig`` into ``directory``.

    The one writer of the artifact format, used by training and by test fixtures.
    Returns the base64 signature (what a desired state carries).
    """
    if sha256_hex(model_bytes) != manifest.tflite_sha256:
        raise ValueError("manifest.tflite_sha256 is not the sha256 of model_bytes")
    directory.mkdir(parents=True, exist_ok=True)
    manifest_bytes = manifest_bytes_of(manifest)
    signature = sign_manifest(manifest_bytes, private_key)
    _write_file(directory / MODEL_FILE, model_bytes)
    _write_file(directory / MANIFEST_FILE, manifest_bytes)
    _write_file(directory / SIGNATURE_FILE, signature.encode() + b"\n")
    return signature


def read_artifact(
    directory: Path,
    *,
    public_keys: list[Ed25519PublicKey],
    supported_feature_spec_versions: frozenset[int],
) -> tuple[ModelManifest, bytes]:
    """Read and verify an artifact folder: (manifest, model bytes), or ArtifactError."""
    try:
        manifest_bytes = (directory / MANIFEST_FILE).read_bytes()
        signature = (directory / SIGNATURE_FILE).read_text().strip()
        model_bytes = (directory / MODEL_FILE).read_bytes()
    except OSError as exc:
        raise ArtifactError(f"cannot read the artifact in {directory}: {exc}") from exc
    manifest = verify_artifact(
        manifest_bytes=manifest_bytes,
        signature_b64=signature,
        model_bytes=model_bytes,
        public_keys=public_keys,
        supported_feature_spec_versions=supported_feature_spec_versions,
    )
    return manifest, model_bytes


def load_public_key(text: str) -> Ed25519PublicKey:
    """A trusted key from PEM (``-----BEGIN PUBLIC KEY-----``) or base64 of the raw 32 bytes."""
    stripped = text.strip()
    if stripped.startswith("-----BEGIN"):
        key = serialization.load_pem_public_key(stripped.encode())
        if not isinstance(key, Ed25519PublicKey):
            raise ValueError("the PEM key is not an Ed25519 public key")
        return key
    try:
        raw = base64.b64decode(stripped, validate=True)
    except ValueError as exc:
        raise ValueError("a public key must be PEM or base64 of 32 raw bytes") from exc
    return Ed25519PublicKey.from_public_bytes(raw)


def public_key_base64(key: Ed25519PublicKey) -> str:
    """The raw 32-byte form of a public key, base64: short enough for an env variable."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()
