"""Dataset snapshots of fleet data: stored scored events, labelled and frozen in the object store.

Labelling rule (the target a model learns):

* confirmed fraud, whether an operator said so or a chargeback did: 1;
* false positive: 0;
* an unlabelled sample: 0. Samples are a random draw of traffic the model let through;
  about 1% of it is fraud nobody has reported yet, and a chargeback that arrives later
  relabels it (chargebacks match samples too), so a later snapshot corrects it;
* an unlabelled sample too young for its chargeback to have come: left out. When a new
  pattern starts, the newest samples are where its fraud is; counted as legitimate,
  they would teach the model that the new pattern is normal;
* an unlabelled anomaly: left out. It was flagged by the model in service and nobody
  has judged it: counting it as fraud trains the next model on the current model's
  guesses, counting it as legitimate teaches it to unlearn what the current one
  catches. Either way the model would learn its predecessor, not the fraud. The
  manifest says how many were left out, so a growing review backlog is visible.

Rows computed with another feature spec than the one this code trains for are left out
too, and counted.

Devices upload every anomaly but only a random share of the rest, so each sample row
stands for 1/share transactions: its weight, for thresholds and metrics (see
``evaluation``). The share is the fleet's over the range: samples received against the
unflagged transactions the telemetry sent in it counted. Without telemetry for the range
every row weighs one, and the manifest says so.

A snapshot is ``datasets/<id>.npz`` (``features`` float32 rows x features, ``labels``
int8, ``timestamps`` float64 epoch seconds of the transaction, ``sources`` the label
source of each positive, "" for a negative, ``weights`` float64) beside
``datasets/<id>.json``, its manifest. The id is the requested range plus a hash of the
content, so the same range with the same labels always names the same snapshot, and a
relabelled range a new one.
"""

from __future__ import annotations

import hashlib
import io
import logging
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import numpy as np
import numpy.typing as npt
from pydantic import AwareDatetime, BaseModel, ConfigDict
from sqlalchemy.orm import Session

from edge_agent.features import FEATURE_SPEC_VERSION, N_FEATURES
from server.anomalies import service as anomalies_service
from server.core.db import utcnow
from server.ingest import service as ingest_service
from server.storage.service import get_object_store
from server.training.dataset import LEGITIMATE, Dataset
from server.training.exceptions import DatasetError

logger = logging.getLogger(__name__)

SNAPSHOT_PREFIX: Final = "datasets"
LABEL_RULE: Final = (
    "confirmed fraud (operator or chargeback) = 1; false positive = 0; unlabelled "
    "sample = 0; unlabelled sample not yet settled = left out; unlabelled anomaly = left out"
)
_ROW_BYTES: Final = 4 * N_FEATURES
_ID_TIME: Final = "%Y%m%dT%H%M%SZ"


class SnapshotManifest(BaseModel):
    """What a snapshot holds, stored beside it as JSON."""

    model_config = ConfigDict(frozen=True)

    id: str
    key: str
    start: AwareDatetime
    end: AwareDatetime
    """The requested range of transaction times, ``[start, end)``."""
    rows: int
    positives: int
    positives_by_source: dict[str, int]
    excluded_unlabelled_anomalies: int
    excluded_unsettled_samples: int = 0
    """Unlabelled samples newer than ``settled_before`` (older manifests lack it)."""
    settled_before: AwareDatetime | None = None
    sample_weight: float = 1.0
    """How many transactions each sample row stands for."""
    sample_weight_basis: str = "none"
    excluded_other_feature_spec: int
    feature_spec_version: int
    label_rule: str
    content_sha256: str
    created_at: AwareDatetime


@dataclass(frozen=True)
class Snapshot:
    manifest: SnapshotManifest
    dataset: Dataset


def snapshot_key(snapshot_id: str) -> str:
    return f"{SNAPSHOT_PREFIX}/{snapshot_id}.npz"


def _manifest_key(snapshot_id: str) -> str:
    return f"{SNAPSHOT_PREFIX}/{snapshot_id}.json"


def _content_hash(dataset: Dataset) -> str:
    digest = hashlib.sha256()
    arrays = [dataset.features, dataset.labels, dataset.timestamps]
    if dataset.weights is not None:
        arrays.append(dataset.weights)
    for array in arrays:
        digest.update(np.ascontiguousarray(array).tobytes())
    digest.update("\n".join(str(s) for s in dataset.fraud_types).encode())
    return digest.hexdigest()


def build_snapshot(
    session: Session, *, start: datetime, end: datetime, settled_before: datetime
) -> Snapshot:
    """Read the range from the database and label it; nothing is stored yet. Unlabelled
    samples of transactions at or after ``settled_before`` are left out."""
    if end <= start:
        raise DatasetError(f"the range {start} to {end} is empty")
    blobs: list[bytes] = []
    labels: list[int] = []
    sources: list[str] = []
    timestamps: list[float] = []
    is_sample: list[bool] = []
    unlabelled_anomalies = 0
    unsettled_samples = 0
    other_spec = 0
    for row in anomalies_service.training_rows(session, start=start, end=end):
        if row.feature_spec_version != FEATURE_SPEC_VERSION or len(row.features) != _ROW_BYTES:
            other_spec += 1
            continue
        if row.fraud is None and row.anomaly:
            unlabelled_anomalies += 1
            continue
        if row.fraud is None and row.transaction_at >= settled_before:
            unsettled_samples += 1
            continue
        target = 1 if row.fraud else 0
        blobs.append(row.features)
        labels.append(target)
        sources.append((row.label_source or "unknown") if target else LEGITIMATE)
        timestamps.append(row.transaction_at.timestamp())
        is_sample.append(not row.anomaly)
    if not labels:
        raise DatasetError(f"no usable scored events between {start} and {end}")
    sample_weight, basis = _sample_weight(session, start=start, end=end)
    dataset = Dataset(
        features=np.frombuffer(b"".join(blobs), dtype="<f4")
        .astype(np.float32)
        .reshape(-1, N_FEATURES),
        labels=np.asarray(labels, dtype=np.int8),
        fraud_types=np.asarray(sources, dtype=np.str_),
        timestamps=np.asarray(timestamps, dtype=np.float64),
        weights=np.where(is_sample, sample_weight, 1.0),
    )
    content = _content_hash(dataset)
    snapshot_id = f"{start.strftime(_ID_TIME)}_{end.strftime(_ID_TIME)}_{content[:16]}"
    manifest = SnapshotManifest(
        id=snapshot_id,
        key=snapshot_key(snapshot_id),
        start=start,
        end=end,
        rows=len(dataset),
        positives=dataset.positives,
        positives_by_source=dict(sorted(Counter(s for s in sources if s).items())),
        excluded_unlabelled_anomalies=unlabelled_anomalies,
        excluded_unsettled_samples=unsettled_samples,
        settled_before=settled_before,
        sample_weight=sample_weight,
        sample_weight_basis=basis,
        excluded_other_feature_spec=other_spec,
        feature_spec_version=FEATURE_SPEC_VERSION,
        label_rule=LABEL_RULE,
        content_sha256=content,
        created_at=utcnow(),
    )
    return Snapshot(manifest=manifest, dataset=dataset)


def _sample_weight(session: Session, *, start: datetime, end: datetime) -> tuple[float, str]:
    """Unflagged transactions per uploaded sample over the range, and how it was found:
    both by arrival (telemetry windows sent, samples received)."""
    totals = ingest_service.model_totals(session, since=start, until=end)
    unflagged = sum(t.scored - t.flagged for t in totals)
    samples = anomalies_service.samples_received(session, since=start, until=end)
    if not samples or unflagged <= 0:
        return 1.0, "none: no telemetry for the range"
    weight = max(1.0, unflagged / samples)
    return weight, f"{unflagged} unflagged transactions in telemetry, {samples} samples"


def store_snapshot(snapshot: Snapshot) -> SnapshotManifest:
    """Write the snapshot unless it is stored already; returns the stored manifest.

    The data goes first and the manifest last, so a manifest always has its data.
    """
    store = get_object_store()
    manifest_key = _manifest_key(snapshot.manifest.id)
    if store.exists(manifest_key):
        return SnapshotManifest.model_validate_json(store.get(manifest_key))
    dataset = snapshot.dataset
    arrays: dict[str, npt.NDArray[Any]] = {
        "features": dataset.features,
        "labels": dataset.labels,
        "timestamps": dataset.timestamps,
        "sources": dataset.fraud_types,
    }
    if dataset.weights is not None:
        arrays["weights"] = dataset.weights
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    store.put(snapshot.manifest.key, buffer.getvalue())
    store.put(manifest_key, snapshot.manifest.model_dump_json(indent=2).encode())
    logger.info(
        "stored dataset snapshot %s: %d rows, %d positives",
        snapshot.manifest.key,
        snapshot.manifest.rows,
        snapshot.manifest.positives,
    )
    return snapshot.manifest


def load_snapshot(snapshot_id: str) -> Snapshot:
    """A stored snapshot, as training reads it."""
    store = get_object_store()
    manifest = SnapshotManifest.model_validate_json(store.get(_manifest_key(snapshot_id)))
    with np.load(io.BytesIO(store.get(manifest.key)), allow_pickle=False) as arrays:
        dataset = Dataset(
            features=arrays["features"],
            labels=arrays["labels"],
            fraud_types=arrays["sources"],
            timestamps=arrays["timestamps"],
            weights=arrays["weights"] if "weights" in arrays.files else None,
        )
    if _content_hash(dataset) != manifest.content_sha256:
        raise DatasetError(f"snapshot {manifest.key} does not match its manifest")
    return Snapshot(manifest=manifest, dataset=dataset)
