"""The model registry: signed model versions, their artifacts, and the signing keys.

Whatever produced a model (the retraining task or an integration's upload), the
registry checks that it can serve, assigns the next version of its name, writes a
manifest and signs it with the control plane's active key, and stores
``model.tflite``, ``manifest.json`` and ``manifest.sig`` in the object store.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from functools import lru_cache

import numpy as np
import numpy.typing as npt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from edge_agent.features import FEATURE_SPEC_VERSION, N_FEATURES, FeatureExtractor
from edge_agent.inference.model import InferenceError, ModelLoadError, TFLiteModel
from edge_agent.protocol.artifact import (
    MANIFEST_FILE,
    MODEL_FILE,
    SIGNATURE_FILE,
    ModelManifest,
    TrainingDataRange,
    manifest_bytes_of,
    public_key_base64,
    sha256_hex,
    sign_manifest,
)
from edge_agent.simulator import Simulator, SimulatorConfig
from server.audit import service as audit_service
from server.common.actor import Actor
from server.common.pagination import PageParams, paginate
from server.core.db import utcnow
from server.registry.exceptions import (
    ModelInUse,
    ModelNotFound,
    ModelRejected,
    SigningKeyInUse,
    SigningKeyNotFound,
)
from server.registry.orm import ModelStage, ModelVersion, SigningKey
from server.registry.schemas import ModelMetadata
from server.storage.service import get_object_store

logger = logging.getLogger(__name__)

# Feature-spec versions the control plane can check models against: version -> inputs.
SUPPORTED_FEATURE_SPECS = {FEATURE_SPEC_VERSION: N_FEATURES}
ARTIFACT_FILES = (MODEL_FILE, MANIFEST_FILE, SIGNATURE_FILE)
MAX_MODEL_BYTES = 64 * 1024 * 1024
REFERENCE_ROWS = 512


# Signing keys


def _new_signing_key() -> SigningKey:
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return SigningKey(
        public_key=public_key_base64(private.public_key()), private_key=pem, is_active=True
    )


def active_signing_key(session: Session) -> SigningKey:
    """The key that signs new models; the first one is made on first use."""
    key = session.scalar(select(SigningKey).where(SigningKey.is_active.is_(True)))
    if key is None:
        key = _new_signing_key()
        session.add(key)
        session.flush()
        audit_service.record(
            session,
            actor=Actor.system("registry"),
            action="signing_key.create",
            target_type="signing_key",
            target_id=key.id,
        )
    return key


def list_signing_keys(session: Session, *, include_retired: bool = False) -> list[SigningKey]:
    statement = select(SigningKey).order_by(SigningKey.created_at)
    if not include_retired:
        statement = statement.where(SigningKey.retired_at.is_(None))
    return list(session.scalars(statement))


def trusted_public_keys(session: Session) -> list[str]:
    """Public keys agents should trust: every key not retired."""
    active_signing_key(session)
    return [key.public_key for key in list_signing_keys(session)]


def rotate_signing_key(session: Session, *, actor: Actor) -> SigningKey:
    """Sign with a new key from now on; the old one stays trusted until it is retired."""
    current = active_signing_key(session)
    current.is_active = False
    session.flush()
    key = _new_signing_key()
    session.add(key)
    session.flush()
    audit_service.record(
        session,
        actor=actor,
        action="signing_key.rotate",
        target_type="signing_key",
        target_id=key.id,
        details={"previous": str(current.id)},
    )
    return key


def retire_signing_key(session: Session, *, actor: Actor, key_id: uuid.UUID) -> SigningKey:
    """Stop trusting a key: models it signed will be refused by agents from now on."""
    key = session.get(SigningKey, key_id)
    if key is None:
        raise SigningKeyNotFound(f"signing key {key_id} does not exist")
    if key.is_active:
        raise SigningKeyInUse("the active key cannot be retired; rotate first")
    if key.retired_at is None:
        key.retired_at = utcnow()
        audit_service.record(
            session,
            actor=actor,
            action="signing_key.retire",
            target_type="signing_key",
            target_id=key.id,
        )
    return key


def _private_key(key: SigningKey) -> Ed25519PrivateKey:
    private = serialization.load_pem_private_key(key.private_key.encode(), password=None)
    assert isinstance(private, Ed25519PrivateKey)
    return private


# Checking models


@lru_cache(maxsize=len(SUPPORTED_FEATURE_SPECS))
def reference_vectors(feature_spec_version: int) -> npt.NDArray[np.float32]:
    """Feature vectors of realistic traffic (fixed seed), to see that a model's scores are sane."""
    if feature_spec_version != FEATURE_SPEC_VERSION:
        raise ModelRejected(f"feature spec v{feature_spec_version} has no reference vectors")
    transactions = Simulator(SimulatorConfig(seed=20261203, fraud_rate=0.05)).generate(2_000)
    vectors = FeatureExtractor().transform_many(transactions)
    return vectors[-REFERENCE_ROWS:]


def check_model(model_bytes: bytes, *, feature_spec_version: int) -> None:
    """Refuse, with the reason, a model that could not serve on a device."""
    if not model_bytes:
        raise ModelRejected("the model file is empty")
    if len(model_bytes) > MAX_MODEL_BYTES:
        raise ModelRejected(f"the model is larger than {MAX_MODEL_BYTES // 2**20} MiB")
    n_features = SUPPORTED_FEATURE_SPECS.get(feature_spec_version)
    if n_features is None:
        raise ModelRejected(
            f"feature spec v{feature_spec_version} is unknown; supported: "
            f"{sorted(SUPPORTED_FEATURE_SPECS)}"
        )
    try:
        model = TFLiteModel(model_bytes, n_features=n_features, max_batch=REFERENCE_ROWS)
        scores = model.predict(reference_vectors(feature_spec_version))
    except ModelLoadError as exc:
        raise ModelRejected(f"the model does not load: {exc}") from exc
    except InferenceError as exc:
        raise ModelRejected(f"the model fails on reference vectors: {exc}") from exc
    if not np.all(np.isfinite(scores)):
        raise ModelRejected("the model outputs non-finite scores on reference vectors")
    if scores.min() < 0.0 or scores.max() > 1.0:
        raise ModelRejected(
            f"the model's scores leave [0, 1] on reference vectors "
            f"(min {scores.min():.3g}, max {scores.max():.3g})"
        )


# Model versions


def register_model(
    session: Session, *, actor: Actor, model_bytes: bytes, metadata: ModelMetadata, source: str
) -> ModelVersion:
    """Check, version, sign and store a model. It starts as a candidate."""
    check_model(model_bytes, feature_spec_version=metadata.feature_spec_version)
    if metadata.training_end < metadata.training_start:
        raise ModelRejected("training_end is before training_start")
    if metadata.parent_version_id is not None:
        get_model(session, metadata.parent_version_id)
    latest = session.scalar(
        select(func.max(ModelVersion.version)).where(ModelVersion.name == metadata.name)
    )
    version = (latest or 0) + 1
    label = f"{metadata.name}-{version}"
    n_features = SUPPORTED_FEATURE_SPECS[metadata.feature_spec_version]
    manifest = ModelManifest(
        name=metadata.name,
        version=label,
        feature_spec_version=metadata.feature_spec_version,
        input_shape=[-1, n_features],
        output_shape=[-1, 1],
        quantization=metadata.quantization,
        threshold=metadata.threshold,
        tflite_sha256=sha256_hex(model_bytes),
        training_data=TrainingDataRange(
            start=metadata.training_start, end=metadata.training_end, rows=metadata.training_rows
        ),
        metrics=metadata.metrics,
        created_at=utcnow(),
    )
    manifest_bytes = manifest_bytes_of(manifest)
    key = active_signing_key(session)
    signature = sign_manifest(manifest_bytes, _private_key(key))
    prefix = f"models/{metadata.name}/{version}"
    store = get_object_store()
    store.put(f"{prefix}/{MODEL_FILE}", model_bytes)
    store.put(f"{prefix}/{MANIFEST_FILE}", manifest_bytes)
    store.put(f"{prefix}/{SIGNATURE_FILE}", signature.encode() + b"\n")
    model = ModelVersion(
        name=metadata.name,
        version=version,
        label=label,
        stage=ModelStage.CANDIDATE,
        feature_spec_version=metadata.feature_spec_version,
        quantization=metadata.quantization,
        threshold=metadata.threshold,
        sha256=manifest.tflite_sha256,
        size_bytes=len(model_bytes),
        manifest=manifest_bytes.decode(),
        signature=signature,
        signing_key_id=key.id,
        artifact_prefix=prefix,
        metrics=metadata.metrics,
        lineage={
            "source": source,
            "parent_version_id": (
                str(metadata.parent_version_id) if metadata.parent_version_id else None
            ),
            "dataset_snapshot": metadata.dataset_snapshot,
            "code_version": metadata.code_version,
        },
        created_by=actor.name,
    )
    session.add(model)
    session.flush()
    audit_service.record(
        session,
        actor=actor,
        action="model.register",
        target_type="model",
        target_id=model.id,
        details={"label": label, "sha256": model.sha256, "source": source},
    )
    logger.info("registered %s (%d bytes, %s)", label, len(model_bytes), source)
    return model


def get_model(session: Session, model_id: uuid.UUID) -> ModelVersion:
    model = session.get(ModelVersion, model_id)
    if model is None:
        raise ModelNotFound(f"model version {model_id} does not exist")
    return model


def labels(session: Session, model_ids: Iterable[uuid.UUID | None]) -> dict[uuid.UUID, str]:
    """The labels (``fraud-3``) of these model versions, in one query; unknown ids are left out."""
    wanted = {model_id for model_id in model_ids if model_id is not None}
    if not wanted:
        return {}
    rows = session.execute(
        select(ModelVersion.id, ModelVersion.label).where(ModelVersion.id.in_(wanted))
    ).all()
    return dict(rows)


def stable_model(session: Session, *, name: str) -> ModelVersion | None:
    """The model of this name that devices fall back to, if one was promoted."""
    return session.scalar(
        select(ModelVersion)
        .where(ModelVersion.name == name, ModelVersion.stage == ModelStage.STABLE)
        .order_by(ModelVersion.created_at.desc(), ModelVersion.id.desc())
        .limit(1)
    )


def model_for_snapshot(session: Session, *, name: str, snapshot: str) -> ModelVersion | None:
    """A model of this name already trained on this dataset snapshot (lineage), if any."""
    return session.scalar(
        select(ModelVersion)
        .where(
            ModelVersion.name == name,
            ModelVersion.lineage["dataset_snapshot"].as_string() == snapshot,
        )
        .order_by(ModelVersion.created_at, ModelVersion.id)
        .limit(1)
    )


def list_models(
    session: Session,
    *,
    params: PageParams,
    name: str | None = None,
    stage: ModelStage | None = None,
) -> tuple[list[ModelVersion], str | None]:
    statement = select(ModelVersion)
    if name:
        statement = statement.where(ModelVersion.name == name)
    if stage:
        statement = statement.where(ModelVersion.stage == stage)
    return paginate(
        session,
        statement,
        order_by=[ModelVersion.created_at, ModelVersion.id],
        params=params,
        descending=True,
    )


def artifact_file(model: ModelVersion, filename: str) -> bytes:
    if filename not in ARTIFACT_FILES:
        raise ModelNotFound(f"a model artifact has no file {filename!r}; it has {ARTIFACT_FILES}")
    return get_object_store().get(f"{model.artifact_prefix}/{filename}")


def retire_model(session: Session, *, actor: Actor, model_id: uuid.UUID) -> ModelVersion:
    model = get_model(session, model_id)
    if model.stage is ModelStage.STABLE:
        raise ModelInUse(
            f"{model.label} is stable: devices fall back to it. Promote another model first."
        )
    if model.stage is not ModelStage.RETIRED:
        previous = model.stage
        model.stage = ModelStage.RETIRED
        audit_service.record(
            session,
            actor=actor,
            action="model.retire",
            target_type="model",
            target_id=model.id,
            details={"label": model.label, "previous_stage": previous.value},
        )
    return model
