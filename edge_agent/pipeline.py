"""The scoring loop: features, TFLite, decision, outbox; one thread, micro-batches.

Feature state is per card and per terminal and depends on arrival order, so every
transaction, whatever its source, goes through this one loop. Sources hand over work
items; the loop takes everything that is waiting (interactive requests first) up to
``max_batch`` transactions and scores it as one matrix. Under light load a batch is one
request, so nothing waits for a batch to fill; under load batches grow by themselves.

A decision is delivered only after the batch's outbox entries are committed, so a
transaction whose answer has been given (or whose MQTT input was acknowledged) cannot
be lost by a crash.

Event ids are UUIDv5 of the device and the transaction: a transaction scored twice
(a replayed input, a redelivered MQTT message after a crash) yields the same event id,
which the control plane stores once.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
import uuid
import zlib
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final

import numpy as np
import numpy.typing as npt

from edge_agent.comms.outbox import Entry, Kind, Outbox
from edge_agent.control_plane import agent_version
from edge_agent.features import FEATURE_SPEC_VERSION, FeatureExtractor
from edge_agent.inference import InferenceError
from edge_agent.protocol.messages import (
    LatencySummary,
    OutboxSummary,
    ScoredEvent,
    Telemetry,
)
from edge_agent.protocol.transaction import Transaction
from edge_agent.telemetry import TelemetryWindow
from edge_agent.updates.manager import LoadedModel, ModelManager, scores_are_valid

logger = logging.getLogger(__name__)

EVENT_NAMESPACE: Final = uuid.UUID("6f1d7c52-3b8e-4a8e-9d0b-2f7a5c1e9b44")
_CRC_RANGE: Final = float(2**32)
_IDLE_WAIT: Final = 0.5
_FREEZE_EVERY_S: Final = 5.0
_FULL_COLLECTION_EVERY_S: Final = 3600.0


def event_id_for(device_id: str, tx: Transaction) -> uuid.UUID:
    return uuid.uuid5(
        EVENT_NAMESPACE, f"{device_id}|{tx.store_id}|{tx.terminal_id}|{tx.transaction_id}"
    )


def sampled(tx: Transaction, rate: float) -> bool:
    """A stable coin per transaction, so a replay samples the same ones."""
    return zlib.crc32(tx.transaction_id.encode()) / _CRC_RANGE < rate


class _Collector:
    """Keeps the cyclic garbage collector's pauses short while feature state grows.

    Process-wide, so only the daemon turns it on (``manage_gc``), not library use.

    The feature state (up to 100,000 cards) is hundreds of thousands of long-lived
    objects without reference cycles; a full collection walks all of them, which takes
    around 100 ms and lands on whichever request is being scored. So every few seconds
    the young generations are collected and everything alive is frozen (``gc.freeze``):
    later collections only walk what is new. Frozen objects are still freed by reference
    counting; only cyclic garbage that was alive when frozen waits, for the full
    collection that unfreezing allows once an hour.
    """

    def __init__(self, now: float) -> None:
        gc.collect()
        gc.freeze()
        self._next_freeze = now + _FREEZE_EVERY_S
        self._next_full = now + _FULL_COLLECTION_EVERY_S

    def tick(self, now: float) -> None:
        if now >= self._next_full:
            gc.unfreeze()
            self._next_full = now + _FULL_COLLECTION_EVERY_S
        elif now >= self._next_freeze:
            gc.collect(1)
            gc.freeze()
            self._next_freeze = now + _FREEZE_EVERY_S


@dataclass(frozen=True, slots=True)
class Decision:
    transaction_id: str
    score: float
    flagged: bool
    threshold: float
    model_version: str

    def as_dict(self) -> dict[str, object]:
        return {
            "transaction_id": self.transaction_id,
            "score": self.score,
            "flagged": self.flagged,
            "decision": "flag" if self.flagged else "pass",
            "threshold": self.threshold,
            "model_version": self.model_version,
        }


class NoModelError(RuntimeError):
    """No model can score right now (none installed, or every one failed)."""


Done = Callable[[list[Decision] | None, BaseException | None], None]


@dataclass(slots=True)
class WorkItem:
    transactions: list[Transaction]
    done: Done | None = None
    enqueued: float = field(default_factory=time.monotonic)


@dataclass(frozen=True, slots=True)
class EventPolicy:
    """What leaves the device: anomalies always, normal traffic at ``sample_rate``."""

    device_id: str
    sample_rate: float


class Scorer:
    """Owns the feature extractor; the only thread that scores."""

    def __init__(
        self,
        manager: ModelManager,
        *,
        outbox: Outbox | None,
        policy: EventPolicy | None,
        max_batch: int,
        max_queued: int,
        max_cards: int,
        max_terminals: int,
        telemetry_interval: float | None = None,
        manage_gc: bool = False,
    ) -> None:
        self.manager = manager
        self.outbox = outbox
        self.policy = policy
        self.max_batch = max_batch
        self.max_queued = max_queued
        self.extractor = FeatureExtractor(max_cards=max_cards, max_terminals=max_terminals)
        self.window = TelemetryWindow(time.monotonic())
        self.telemetry_interval = telemetry_interval
        self.manage_gc = manage_gc
        self._interactive: deque[WorkItem] = deque()
        self._stream: deque[WorkItem] = deque()
        self._queued = 0
        self._cond = threading.Condition()
        # Held while a batch is scored, by the scoring thread or by score_now's caller.
        self._busy = threading.Lock()
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="scorer", daemon=True)
        self.telemetry_sent = 0

    # --- sources ------------------------------------------------------------------------

    def submit(self, item: WorkItem) -> None:
        """An interactive request (HTTP): never waits for room."""
        with self._cond:
            if self._stop:
                raise NoModelError("the agent is shutting down")
            self._interactive.append(item)
            self._queued += len(item.transactions)
            self._cond.notify_all()

    def score_now(self, item: WorkItem) -> bool:
        """Score an interactive request in the calling thread if nothing else is waiting.

        Saves the two thread switches of a hand-over, which on a busy core are most of a
        request's latency. False (and nothing done) when work is queued or being scored:
        then submit() it.
        """
        with self._cond:
            if self._stop or self._interactive or self._stream:
                return False
            if not self._busy.acquire(blocking=False):
                return False
        try:
            self.process([item])
        finally:
            self._busy.release()
        return True

    def submit_stream(self, item: WorkItem, *, timeout: float | None = None) -> bool:
        """A stream chunk: waits while ``max_queued`` transactions wait; False on timeout."""
        with self._cond:
            if not self._cond.wait_for(
                lambda: self._stop or self._queued < self.max_queued, timeout=timeout
            ):
                return False
            if self._stop:
                return False
            self._stream.append(item)
            self._queued += len(item.transactions)
            self._cond.notify_all()
        return True

    def queued(self) -> int:
        return self._queued

    # --- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Score what is already queued, write a last telemetry window, then stop."""
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        self._thread.join(timeout=timeout)

    def _take(self) -> list[WorkItem]:
        """Wait for work; returns it with ``_busy`` held (the caller releases it)."""
        with self._cond:
            while not self._interactive and not self._stream:
                if self._stop:
                    return []
                self._cond.wait(timeout=_IDLE_WAIT)
                if not self._interactive and not self._stream:
                    return []
            self._busy.acquire()
            items: list[WorkItem] = []
            rows = 0
            for source in (self._interactive, self._stream):
                while source and (
                    not items or rows + len(source[0].transactions) <= self.max_batch
                ):
                    item = source.popleft()
                    items.append(item)
                    rows += len(item.transactions)
            self._queued -= rows
            self._cond.notify_all()
        return items

    def _run(self) -> None:
        next_telemetry = (
            time.monotonic() + self.telemetry_interval if self.telemetry_interval else None
        )
        collector = _Collector(time.monotonic()) if self.manage_gc else None
        while True:
            items = self._take()
            if items:
                try:
                    self.process(items)
                finally:
                    self._busy.release()
            elif self._stop and not self._interactive and not self._stream:
                break
            now = time.monotonic()
            if collector is not None:
                collector.tick(now)
            if next_telemetry is not None and now >= next_telemetry:
                self.emit_telemetry()
                next_telemetry = time.monotonic() + (self.telemetry_interval or 0.0)
        if self.telemetry_interval:
            self.emit_telemetry()

    # --- scoring ------------------------------------------------------------------------

    def _scores(
        self, features: npt.NDArray[np.float32]
    ) -> tuple[LoadedModel, npt.NDArray[np.float32]]:
        """Score with the active model; on failure roll back and score with the previous one."""
        loaded = self.manager.active
        while loaded is not None:
            try:
                scores = loaded.model.predict(features)
            except InferenceError as exc:
                reason = f"inference failed: {exc}"
            else:
                if scores_are_valid(scores):
                    return loaded, scores
                reason = "scores outside [0, 1] or not finite"
            self.window.record_errors(1)
            logger.error("model %s failed on live traffic: %s", loaded.version, reason)
            loaded = self.manager.rollback(loaded, reason)
        raise NoModelError("no model is installed")

    def _wait_for_model(self) -> bool:
        while self.manager.active is None:
            with self._cond:
                if self._stop:
                    return False
            logger.debug("waiting for a model before scoring")
            self.manager.wait_for_model(timeout=_IDLE_WAIT)
        return True

    def process(self, items: Sequence[WorkItem]) -> None:
        transactions = [tx for item in items for tx in item.transactions]
        if self.manager.active is None and any(item.done is None for item in items):
            # Stream input waits for a model rather than losing transactions.
            self._wait_for_model()
        try:
            features = self.extractor.transform_many(transactions)
            loaded, scores = self._scores(features)
        except NoModelError as exc:
            for item in items:
                if item.done is not None:
                    item.done(None, exc)
            return
        threshold = loaded.threshold
        flags = scores >= threshold
        entries = (
            self._entries(transactions, features, scores, flags, loaded) if self.policy else []
        )
        if entries and self.outbox is not None:
            self.outbox.add(entries)
        now = time.monotonic()
        latencies = np.array([now - item.enqueued for item in items], dtype=np.float64)
        weights = np.array([len(item.transactions) for item in items], dtype=np.int64)
        self.window.record(scores, int(flags.sum()), latencies, weights)
        if all(item.done is None for item in items):
            return
        version = loaded.version
        offset = 0
        score_list = scores.tolist()
        flag_list = flags.tolist()
        for item in items:
            count = len(item.transactions)
            if item.done is not None:
                decisions = [
                    Decision(
                        tx.transaction_id,
                        score_list[offset + i],
                        flag_list[offset + i],
                        threshold,
                        version,
                    )
                    for i, tx in enumerate(item.transactions)
                ]
                item.done(decisions, None)
            offset += count

    def _entries(
        self,
        transactions: list[Transaction],
        features: npt.NDArray[np.float32],
        scores: npt.NDArray[np.float32],
        flags: npt.NDArray[np.bool_],
        loaded: LoadedModel,
    ) -> list[Entry]:
        policy = self.policy
        assert policy is not None
        rate = policy.sample_rate
        chosen = [
            (i, Kind.ANOMALY) if flags[i] else (i, Kind.SAMPLE)
            for i in range(len(transactions))
            if flags[i] or (rate > 0.0 and sampled(transactions[i], rate))
        ]
        if not chosen:
            return []
        scored_at = datetime.now(UTC)
        entries: list[Entry] = []
        for i, kind in chosen:
            tx = transactions[i]
            event = ScoredEvent(
                event_id=event_id_for(policy.device_id, tx),
                transaction=tx,
                features=features[i].tolist(),
                feature_spec_version=FEATURE_SPEC_VERSION,
                score=float(scores[i]),
                threshold=loaded.threshold,
                flagged=kind is Kind.ANOMALY,
                model_version=loaded.version,
                scored_at=scored_at,
            )
            entries.append(Entry(str(event.event_id), kind, event.model_dump_json().encode()))
        return entries

    def emit_telemetry(self) -> Telemetry | None:
        """Close the current window and queue it for upload."""
        snapshot = self.window.take(time.monotonic())
        if self.policy is None or self.outbox is None:
            return None
        stats = self.outbox.stats()
        active = self.manager.active
        telemetry = Telemetry(
            event_id=uuid.uuid4(),
            device_id=self.policy.device_id,
            sent_at=datetime.now(UTC),
            window_seconds=snapshot.seconds,
            agent_version=agent_version(),
            model_version=active.version if active else None,
            feature_spec_version=FEATURE_SPEC_VERSION,
            scored=snapshot.scored,
            flagged=snapshot.flagged,
            inference_errors=snapshot.inference_errors,
            model_load_failures=self.manager.take_load_failures(),
            latency=LatencySummary(
                p50_ms=snapshot.p50_ms, p95_ms=snapshot.p95_ms, p99_ms=snapshot.p99_ms
            ),
            score_histogram=snapshot.score_histogram,
            outbox=OutboxSummary(
                depth=stats.depth,
                dropped_samples=stats.dropped_samples,
                dropped_anomalies=stats.dropped_anomalies,
            ),
            last_update=self.manager.last_update,
        )
        self.outbox.add(
            [Entry(str(telemetry.event_id), Kind.TELEMETRY, telemetry.model_dump_json().encode())]
        )
        self.telemetry_sent += 1
        return telemetry
