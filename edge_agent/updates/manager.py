"""Which model scores: verify, load side by side, swap atomically, fall back by itself.

The scoring loop reads :attr:`ModelManager.active` once per micro-batch, so a swap
(one attribute assignment) always falls between two batches. The previous model stays
loaded next to the new one: when the new one raises or produces scores that are not
finite numbers in [0, 1], the scoring loop calls :meth:`ModelManager.rollback` and
scores the same batch again with the previous model, so no transaction goes unscored.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path

import numpy as np
import numpy.typing as npt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from edge_agent.features import FEATURE_SPEC_VERSION, N_FEATURES, FeatureExtractor
from edge_agent.inference import InferenceError, ModelLoadError, TFLiteModel
from edge_agent.protocol.artifact import (
    SIGNATURE_FILE,
    ArtifactError,
    ModelManifest,
    read_artifact,
    sha256_hex,
    verify_artifact,
)
from edge_agent.updates.store import ModelStore

logger = logging.getLogger(__name__)

SUPPORTED_FEATURE_SPECS = frozenset({FEATURE_SPEC_VERSION})


@cache
def probe_vectors() -> npt.NDArray[np.float32]:
    """Feature vectors of a little simulated traffic, plus all-zero rows, to try a model on."""
    from edge_agent.simulator import Simulator, SimulatorConfig

    simulator = Simulator(SimulatorConfig(seed=0, n_cards=200, n_stores=8, fraud_rate=0.05))
    rows = FeatureExtractor().transform_many(simulator.generate(62))
    return np.vstack([rows, np.zeros((2, N_FEATURES), dtype=np.float32)])


def scores_are_valid(scores: npt.NDArray[np.float32]) -> bool:
    """Finite and within [0, 1]: anything else is a broken model, not a fraud signal."""
    return bool(np.all(np.isfinite(scores)) and np.all((scores >= 0.0) & (scores <= 1.0)))


def rejection_key(sha256: str, signature: str) -> str:
    """What a refusal is remembered by: the model bytes together with the signed manifest."""
    return f"{sha256}:{sha256_hex(signature.encode())[:16]}"


@dataclass(frozen=True, slots=True)
class LoadedModel:
    model: TFLiteModel
    manifest: ModelManifest
    name: str
    signature: str

    @property
    def version(self) -> str:
        return self.manifest.version

    @property
    def threshold(self) -> float:
        return self.manifest.threshold


class ModelManager:
    """Holds the active and previous models and the on-disk pointer to them."""

    def __init__(
        self,
        store: ModelStore,
        *,
        public_keys: list[Ed25519PublicKey],
        max_batch: int,
    ) -> None:
        self.store = store
        self._keys = public_keys
        self._max_batch = max_batch
        self._lock = threading.Lock()
        self._pointer = store.read_pointer()
        self.active: LoadedModel | None = None
        self.previous: LoadedModel | None = None
        self.last_update: str | None = None
        self._load_failures = 0
        self._changed = threading.Condition()

    # --- reporting ----------------------------------------------------------------------

    def note(self, text: str) -> None:
        stamp = datetime.now(UTC).isoformat(timespec="seconds")
        self.last_update = f"{stamp} {text}"[:500]
        logger.info("model update: %s", text)

    def take_load_failures(self) -> int:
        """Load failures since the last call (one telemetry window)."""
        with self._lock:
            count, self._load_failures = self._load_failures, 0
        return count

    @property
    def generation(self) -> int:
        return self._pointer.generation

    def rejected_reason(self, sha256: str, signature: str) -> str | None:
        return self._pointer.rejected.get(rejection_key(sha256, signature))

    def wait_for_model(self, timeout: float) -> LoadedModel | None:
        with self._changed:
            self._changed.wait_for(lambda: self.active is not None, timeout=timeout)
        return self.active

    # --- loading ------------------------------------------------------------------------

    def _load(
        self, manifest: ModelManifest, model_bytes: bytes, name: str, signature: str
    ) -> LoadedModel:
        """Load and try a verified artifact; ModelLoadError if it cannot serve."""
        if manifest.input_shape[-1:] != [N_FEATURES]:
            raise ModelLoadError(
                f"manifest input shape {manifest.input_shape} is not [n, {N_FEATURES}]"
            )
        model = TFLiteModel(model_bytes, n_features=N_FEATURES, max_batch=self._max_batch)
        try:
            scores = model.predict(probe_vectors())
        except InferenceError as exc:
            raise ModelLoadError(f"the model fails on probe inputs: {exc}") from exc
        if not scores_are_valid(scores):
            raise ModelLoadError("the model scores probe inputs outside [0, 1] or not finite")
        model.warm_up()
        return LoadedModel(model, manifest, name, signature)

    def _load_from_disk(self, name: str) -> LoadedModel:
        directory = self.store.path(name)
        manifest, model_bytes = read_artifact(
            directory,
            public_keys=self._keys,
            supported_feature_spec_versions=SUPPORTED_FEATURE_SPECS,
        )
        signature = (directory / SIGNATURE_FILE).read_text().strip()
        return self._load(manifest, model_bytes, name, signature)

    def start(self, bootstrap: Path | None = None) -> None:
        """Load the current model, else the previous one, else the bootstrap artifact."""
        pointer = self._pointer
        for role, name in (("current", pointer.current), ("previous", pointer.previous)):
            if name is None:
                continue
            try:
                loaded = self._load_from_disk(name)
            except (ArtifactError, ModelLoadError) as exc:
                self._load_failures += 1
                self.note(f"{role} model {name} cannot be loaded ({exc}); falling back")
                continue
            self._activate(loaded, keep_previous=role == "current")
            if role == "current" and pointer.previous is not None:
                try:
                    self.previous = self._load_from_disk(pointer.previous)
                except (ArtifactError, ModelLoadError) as exc:
                    logger.warning("previous model %s cannot be loaded: %s", pointer.previous, exc)
            return
        if bootstrap is not None:
            self.install_from_directory(bootstrap, origin="bootstrap")

    def install_from_directory(self, directory: Path, *, origin: str) -> bool:
        try:
            manifest_bytes = (directory / "manifest.json").read_bytes()
            signature = (directory / "manifest.sig").read_text().strip()
            model_bytes = (directory / "model.tflite").read_bytes()
        except OSError as exc:
            with self._lock:
                self._load_failures += 1
            self.note(f"refused {origin} artifact: {exc}")
            return False
        return self.install(
            manifest_bytes=manifest_bytes,
            signature=signature,
            model_bytes=model_bytes,
            origin=origin,
        )

    def install(
        self,
        *,
        manifest_bytes: bytes,
        signature: str,
        model_bytes: bytes,
        origin: str,
        expected_sha256: str | None = None,
        expected_version: str | None = None,
    ) -> bool:
        """Verify, load and try a new model; on success it becomes active. Never raises."""
        sha = sha256_hex(model_bytes)
        if expected_sha256 is not None and sha != expected_sha256:
            # Damaged or tampered with on the way: not remembered, a new download may be fine.
            self.refuse(None, f"refused {origin} model: the download does not match its sha256")
            return False
        try:
            manifest = verify_artifact(
                manifest_bytes=manifest_bytes,
                signature_b64=signature,
                model_bytes=model_bytes,
                public_keys=self._keys,
                supported_feature_spec_versions=SUPPORTED_FEATURE_SPECS,
            )
            if expected_version is not None and manifest.version != expected_version:
                raise ArtifactError(
                    f"the manifest says version {manifest.version}, the desired state "
                    f"{expected_version}"
                )
            name = ModelStore.dirname(manifest.version, sha)
            loaded = self._load(manifest, model_bytes, name, signature)
        except (ArtifactError, ModelLoadError) as exc:
            self.refuse(rejection_key(sha, signature), f"refused {origin} model: {exc}")
            return False
        self.store.save(
            name, manifest_bytes=manifest_bytes, signature=signature, model_bytes=model_bytes
        )
        before = self.active.version if self.active else "none"
        self._activate(loaded, keep_previous=True)
        self.note(f"installed {loaded.version} from {origin} (was {before})")
        return True

    def refuse(self, key: str | None, reason: str) -> None:
        """Count a model that will not be loaded; remember it under ``key`` if given."""
        with self._lock:
            self._load_failures += 1
            if key is not None:
                self._pointer.rejected[key] = reason[:300]
                self.store.write_pointer(self._pointer)
        current = self.active.version if self.active else "none"
        self.note(f"{reason}; keeping {current}")

    def _activate(self, loaded: LoadedModel, *, keep_previous: bool) -> None:
        with self._lock:
            old = self.active
            if old is not None and old.name == loaded.name:
                return
            if keep_previous and old is not None:
                self.previous = old
            self.active = loaded  # the swap: the next micro-batch uses it
            self._pointer.current = loaded.name
            self._pointer.previous = self.previous.name if self.previous else None
            self.store.write_pointer(self._pointer)
            self.store.prune({n for n in (self._pointer.current, self._pointer.previous) if n})
        with self._changed:
            self._changed.notify_all()

    def set_generation(self, generation: int) -> None:
        with self._lock:
            self._pointer.generation = generation
            self.store.write_pointer(self._pointer)

    def rollback(self, bad: LoadedModel, reason: str) -> LoadedModel | None:
        """Replace ``bad`` (if still active) by the previous model; ``bad`` is never tried again."""
        with self._lock:
            if self.active is not bad:
                return self.active
            self._load_failures += 1
            key = rejection_key(bad.manifest.tflite_sha256, bad.signature)
            self._pointer.rejected[key] = reason[:300]
            fallback = self.previous
            self.active = fallback
            self.previous = None
            self._pointer.current = fallback.name if fallback else None
            self._pointer.previous = None
            self.store.write_pointer(self._pointer)
            self.store.prune({fallback.name} if fallback else set())
        target = fallback.version if fallback else "no model"
        self.note(f"rolled back {bad.version} to {target}: {reason}")
        return fallback
