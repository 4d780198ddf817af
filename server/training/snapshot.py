"""Dataset snapshots of fleet data: stored scored events, labelled and frozen in the object store.

Labelling rule (the target a model learns):

* confirmed fraud, whether an operator said so or a chargeback did: 1;
* false positive: 0;
* an unlabelled sample: 0. Samples are a random draw of traffic the model let through;
  about 1% of it is fraud nobody has reported yet, and a chargeback that arrives later
  relabels it (chargebacks match samples too), so a later snapshot corrects it;
* an unlabelled anomaly: left out. It was flagged by the model in service and nobody
  has judged it: counting it as fraud trains the next model on the current model's
  guesses, counting it as legitimate teaches it to unlearn what the current one
  catches. Either way the model would learn its predecessor, not the fraud. The
  manifest says how many were left out, so a growing review backlog is visible.

Rows computed with another feature spec than the one this code trains for are left out
too, and counted.

A snapshot is ``datasets/<id>.npz`` (``features`` float32 rows x features, ``labels``
int8, ``timestamps`` float64 epoch seconds of the transaction, ``sources`` the label
source of each positive, "" for a negative) beside ``datasets/<id>.json``, its
manifest. The id is the requested range plus a hash of the content, so the same range
with the same labels always names the same snapshot, and a relabelled range a new one.
"""

from __future__ import annotations

import hashlib
import io
import logging
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Final

import numpy as np
from pydantic import AwareDatetime, BaseModel, ConfigDict
from sqlalchemy.orm import Session

from edge_agent.features import FEATURE_SPEC_VERSION, N_FEATURES
from server.anomalies import service as anomalies_service
from server.core.db import utcnow
from server.storage.service import get_object_store
from server.training.dataset import LEGITIMATE, Dataset
from server.training.exceptions import DatasetError

logger = logging.getLogger(__name__)

SNAPSHOT_PREFIX: Final = "datasets"
LABEL_RULE: Final = (
    "confirmed fraud (operator or chargeback) = 1; false positive = 0; unlabelled "
    "sample = 0; unlabelled anomaly = left out"
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
    for array in (dataset.features, dataset.labels, dataset.timestamps):
        digest.update(np.ascontiguousarray(array).tobytes())
    digest.update("\n".join(str(s) for s in dataset.fraud_types).encode())
    return digest.hexdigest()


def build_snapshot(session: Session, *, start: datetime, end: datetime) -> Snapshot:
    """Read the range from the database and label it; nothing is stored yet."""
    if end <= start:
        raise DatasetError(f"the range {start} to {end} is empty")
    blobs: list[bytes] = []
    labels: list[int] = []
    sources: list[str] = []
    timestamps: list[float] = []
    unlabelled_anomalies = 0
    other_spec = 0
    for row in anomalies_service.training_rows(session, start=start, end=end):
        if row.feature_spec_version != FEATURE_SPEC_VERSION or len(row.features) != _ROW_BYTES:
            other_spec += 1
            continue
        if row.fraud is None and row.anomaly:
            unlabelled_anomalies += 1
            continue
        target = 1 if row.fraud else 0
        blobs.append(row.features)
        labels.append(target)
        sources.append((row.label_source or "unknown") if target else LEGITIMATE)
        timestamps.append(row.transaction_at.timestamp())
    if not labels:
        raise DatasetError(f"no usable scored events between {start} and {end}")
    dataset = Dataset(
        features=np.frombuffer(b"".join(blobs), dtype="<f4")
        .astype(np.float32)
        .reshape(-1, N_FEATURES),
        labels=np.asarray(labels, dtype=np.int8),
        fraud_types=np.asarray(sources, dtype=np.str_),
        timestamps=np.asarray(timestamps, dtype=np.float64),
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
        excluded_other_feature_spec=other_spec,
        feature_spec_version=FEATURE_SPEC_VERSION,
        label_rule=LABEL_RULE,
        content_sha256=content,
        created_at=utcnow(),
    )
    return Snapshot(manifest=manifest, dataset=dataset)


def store_snapshot(snapshot: Snapshot) -> SnapshotManifest:
    """Write the snapshot unless it is stored already; returns the stored manifest.

    The data goes first and the manifest last, so a manifest always has its data.
    """
    store = get_object_store()
    manifest_key = _manifest_key(snapshot.manifest.id)
    if store.exists(manifest_key):
        return SnapshotManifest.model_validate_json(store.get(manifest_key))
    buffer = io.BytesIO()
    np.savez_compressed(
        buffer,
        features=snapshot.dataset.features,
        labels=snapshot.dataset.labels,
        timestamps=snapshot.dataset.timestamps,
        sources=snapshot.dataset.fraud_types,
    )
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
        )
    if _content_hash(dataset) != manifest.content_sha256:
        raise DatasetError(f"snapshot {manifest.key} does not match its manifest")
    return Snapshot(manifest=manifest, dataset=dataset)
