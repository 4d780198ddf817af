"""Windowed scoring metrics: counts, flag rate, score histogram, latency percentiles.

Latencies go into a fixed log-spaced histogram (1 µs to 100 s, 2% wide bins), so a
window costs the same memory at 10 or 100,000 transactions per second and the
percentiles are exact to within one bin.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from edge_agent.protocol.messages import SCORE_HISTOGRAM_BINS

_LATENCY_MIN_S: Final = 1e-6
_LATENCY_MAX_S: Final = 100.0
_LATENCY_GROWTH: Final = 1.02
_N_LATENCY_BINS: Final = (
    math.ceil(math.log(_LATENCY_MAX_S / _LATENCY_MIN_S) / math.log(_LATENCY_GROWTH)) + 1
)
_LATENCY_EDGES: Final = _LATENCY_MIN_S * _LATENCY_GROWTH ** np.arange(_N_LATENCY_BINS)


class LatencyHistogram:
    """Latency counts in fixed log-spaced bins; not thread-safe (callers lock)."""

    def __init__(self) -> None:
        self.counts = np.zeros(_N_LATENCY_BINS + 1, dtype=np.int64)

    def add(self, latencies_s: npt.NDArray[np.float64], weights: npt.NDArray[np.int64]) -> None:
        np.add.at(self.counts, np.searchsorted(_LATENCY_EDGES, latencies_s), weights)

    def add_one(self, latency_s: float) -> None:
        self.counts[int(np.searchsorted(_LATENCY_EDGES, latency_s))] += 1

    def percentile_ms(self, q: float) -> float:
        """Upper edge of the bin holding the q-quantile (0 when empty)."""
        total = int(self.counts.sum())
        if total == 0:
            return 0.0
        rank = max(1, math.ceil(q * total))
        slot = int(np.searchsorted(np.cumsum(self.counts), rank))
        return float(_LATENCY_EDGES[min(slot, _N_LATENCY_BINS - 1)] * 1000.0)

    def total(self) -> int:
        return int(self.counts.sum())


@dataclass(frozen=True, slots=True)
class WindowSnapshot:
    seconds: float
    scored: int
    flagged: int
    inference_errors: int
    invalid_inputs: int
    score_histogram: list[int]
    p50_ms: float
    p95_ms: float
    p99_ms: float


def score_bins(scores: npt.NDArray[np.float32]) -> npt.NDArray[np.int64]:
    """Counts per bin of the telemetry histogram: [0, 0.05), ..., [0.95, 1]."""
    index = np.clip((scores * SCORE_HISTOGRAM_BINS).astype(np.int64), 0, SCORE_HISTOGRAM_BINS - 1)
    return np.bincount(index, minlength=SCORE_HISTOGRAM_BINS)


class TelemetryWindow:
    """Accumulates one window; :meth:`take` returns it and starts the next."""

    def __init__(self, started: float) -> None:
        self._lock = threading.Lock()
        self._reset(started)
        self.total_scored = 0
        self.total_flagged = 0
        self.total_invalid = 0

    def _reset(self, started: float) -> None:
        self._started = started
        self._scored = 0
        self._flagged = 0
        self._errors = 0
        self._invalid = 0
        self._histogram = np.zeros(SCORE_HISTOGRAM_BINS, dtype=np.int64)
        self._latency = LatencyHistogram()

    def record(
        self,
        scores: npt.NDArray[np.float32],
        flagged: int,
        latencies_s: npt.NDArray[np.float64],
        weights: npt.NDArray[np.int64],
    ) -> None:
        """One scored micro-batch: each latency counts ``weight`` transactions."""
        bins = score_bins(scores)
        with self._lock:
            self._scored += len(scores)
            self._flagged += flagged
            self.total_scored += len(scores)
            self.total_flagged += flagged
            self._histogram += bins
            self._latency.add(latencies_s, weights)

    def record_errors(self, count: int) -> None:
        with self._lock:
            self._errors += count

    def record_invalid(self, count: int) -> None:
        with self._lock:
            self._invalid += count
            self.total_invalid += count

    def take(self, now: float) -> WindowSnapshot:
        with self._lock:
            snapshot = WindowSnapshot(
                seconds=max(now - self._started, 1e-3),
                scored=self._scored,
                flagged=self._flagged,
                inference_errors=self._errors,
                invalid_inputs=self._invalid,
                score_histogram=[int(v) for v in self._histogram],
                p50_ms=self._latency.percentile_ms(0.50),
                p95_ms=self._latency.percentile_ms(0.95),
                p99_ms=self._latency.percentile_ms(0.99),
            )
            self._reset(now)
        return snapshot
