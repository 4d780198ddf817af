"""The disk-backed outbox: every upload waits here until the control plane confirms it.

One SQLite database in WAL mode, one table::

    outbox(seq INTEGER PRIMARY KEY AUTOINCREMENT,  -- creation order
           event_id TEXT UNIQUE,                   -- what a Confirmation names
           channel TEXT,                           -- anomalies | samples | telemetry
           payload BLOB,                           -- a ScoredEvent or a Telemetry, as JSON
           size INTEGER, created_at REAL)

An entry is deleted only by :meth:`Outbox.confirm`. Which entries are in flight (sent,
not yet confirmed) is kept in memory only: after a restart everything left is sent
again, and the control plane, which stores each event id once and confirms duplicates
again, makes that harmless.

Disk is bounded by ``max_bytes`` of payload. When an entry does not fit, the oldest
samples are evicted first, then (for an anomaly) the oldest telemetry; a sample that
does not fit is dropped rather than evicting anything, and an anomaly is dropped only
when nothing but anomalies is left. Every drop is counted.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Final, Literal

logger = logging.getLogger(__name__)

OUTBOX_FILE: Final = "outbox.sqlite3"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL UNIQUE,
    channel TEXT NOT NULL,
    payload BLOB NOT NULL,
    size INTEGER NOT NULL,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS outbox_channel_seq ON outbox (channel, seq);
"""
_DELETE_CHUNK = 500


class Kind(StrEnum):
    """Outbox channels, in the order they are sent (and the reverse order they are dropped)."""

    ANOMALY = "anomalies"
    TELEMETRY = "telemetry"
    SAMPLE = "samples"


SEND_ORDER: Final = (Kind.ANOMALY, Kind.TELEMETRY, Kind.SAMPLE)


@dataclass(frozen=True, slots=True)
class Entry:
    event_id: str
    kind: Kind
    payload: bytes


@dataclass(frozen=True, slots=True)
class Pending:
    """An entry chosen for sending."""

    seq: int
    event_id: str
    payload: bytes


@dataclass(slots=True)
class _InFlight:
    kind: Kind
    event_id: str
    size: int
    sent_at: float


@dataclass(frozen=True, slots=True)
class OutboxStats:
    depth: int
    bytes: int
    in_flight: int
    dropped_samples: int
    dropped_anomalies: int
    dropped_telemetry: int
    confirmed: int


class Outbox:
    """Thread-safe: the scoring loop adds, the sender reads and deletes."""

    def __init__(
        self,
        path: Path,
        *,
        max_bytes: int,
        synchronous: Literal["normal", "full"] = "normal",
    ) -> None:
        self.path = path
        self.max_bytes = max_bytes
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA synchronous={synchronous.upper()}")
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()
        row = self._db.execute("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM outbox").fetchone()
        self._depth = int(row[0])
        self._bytes = int(row[1])
        self._in_flight: dict[int, _InFlight] = {}  # seq -> entry, oldest send first
        self._by_event: dict[str, int] = {}
        self._cursor = dict.fromkeys(Kind, 0)  # highest seq sent per channel in this process
        self._dropped = dict.fromkeys(Kind, 0)
        self._confirmed = 0
        if self._depth:
            logger.info("outbox resumes with %d entries (%d bytes)", self._depth, self._bytes)

    def close(self) -> None:
        with self._lock:
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._db.close()

    # --- adding -------------------------------------------------------------------------

    def _evict(self, kind: Kind, need: int) -> int:
        """Delete the oldest entries of ``kind`` until ``need`` bytes are free; bytes freed."""
        freed = 0
        while freed < need:
            rows = self._db.execute(
                "SELECT seq, size FROM outbox WHERE channel = ? ORDER BY seq LIMIT 256",
                (kind.value,),
            ).fetchall()
            if not rows:
                break
            chosen: list[int] = []
            for seq, size in rows:
                chosen.append(seq)
                freed += size
                if freed >= need:
                    break
            self._db.execute(
                f"DELETE FROM outbox WHERE seq IN ({','.join('?' * len(chosen))})",  # noqa: S608
                chosen,
            )
            for seq in chosen:
                flight = self._in_flight.pop(seq, None)
                if flight is not None:
                    self._by_event.pop(flight.event_id, None)
            self._depth -= len(chosen)
            self._dropped[kind] += len(chosen)
        self._bytes -= freed
        return freed

    def _make_room(self, entry: Entry, size: int) -> bool:
        over = self._bytes + size - self.max_bytes
        if over <= 0:
            return True
        if entry.kind is Kind.SAMPLE:
            return False
        over -= self._evict(Kind.SAMPLE, over)
        if over > 0 and entry.kind is Kind.ANOMALY:
            over -= self._evict(Kind.TELEMETRY, over)
        return over <= 0

    def add(self, entries: Sequence[Entry]) -> int:
        """Store entries durably (one transaction); returns how many were kept."""
        if not entries:
            return 0
        now = time.time()
        kept = 0
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for entry in sorted(entries, key=lambda e: SEND_ORDER.index(e.kind)):
                    size = len(entry.payload)
                    if not self._make_room(entry, size):
                        self._dropped[entry.kind] += 1
                        continue
                    cursor = self._db.execute(
                        "INSERT OR IGNORE INTO outbox"
                        " (event_id, channel, payload, size, created_at) VALUES (?, ?, ?, ?, ?)",
                        (entry.event_id, entry.kind.value, entry.payload, size, now),
                    )
                    if cursor.rowcount:
                        kept += 1
                        self._depth += 1
                        self._bytes += size
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        dropped = len(entries) - kept
        if dropped:
            logger.debug("outbox kept %d of %d entries", kept, len(entries))
        return kept

    # --- sending ------------------------------------------------------------------------

    def next_batch(
        self, kind: Kind, *, limit: int, max_bytes: int, resend_after: float
    ) -> list[Pending]:
        """Entries of ``kind`` to send now: overdue resends first, then never-sent ones."""
        now = time.monotonic()
        with self._lock:
            overdue: list[int] = []
            for seq, flight in self._in_flight.items():
                if now - flight.sent_at < resend_after:
                    break  # the dict is in send order: the rest are younger
                if flight.kind is kind:
                    overdue.append(seq)
                    if len(overdue) >= limit:
                        break
            rows: list[tuple[int, str, bytes]] = []
            if overdue:
                rows = self._db.execute(
                    "SELECT seq, event_id, payload FROM outbox WHERE seq IN "  # noqa: S608
                    f"({','.join('?' * len(overdue))}) ORDER BY seq",
                    overdue,
                ).fetchall()
            if len(rows) < limit:
                rows += self._db.execute(
                    "SELECT seq, event_id, payload FROM outbox WHERE channel = ? AND seq > ?"
                    " ORDER BY seq LIMIT ?",
                    (kind.value, self._cursor[kind], limit - len(rows)),
                ).fetchall()
        batch: list[Pending] = []
        total = 0
        for seq, event_id, payload in rows:
            if batch and total + len(payload) > max_bytes:
                break
            batch.append(Pending(seq, event_id, bytes(payload)))
            total += len(payload)
        return batch

    def mark_sent(self, kind: Kind, batch: Iterable[Pending]) -> None:
        now = time.monotonic()
        with self._lock:
            for pending in batch:
                self._in_flight.pop(pending.seq, None)
                self._in_flight[pending.seq] = _InFlight(
                    kind, pending.event_id, len(pending.payload), now
                )
                self._by_event[pending.event_id] = pending.seq
                if pending.seq > self._cursor[kind]:
                    self._cursor[kind] = pending.seq

    def confirm(self, event_ids: Sequence[str]) -> int:
        """Delete confirmed entries; returns how many were still here."""
        deleted = 0
        with self._lock:
            for start in range(0, len(event_ids), _DELETE_CHUNK):
                chunk = event_ids[start : start + _DELETE_CHUNK]
                rows = self._db.execute(
                    "DELETE FROM outbox WHERE event_id IN "  # noqa: S608
                    f"({','.join('?' * len(chunk))}) RETURNING size",
                    chunk,
                ).fetchall()
                deleted += len(rows)
                self._bytes -= sum(size for (size,) in rows)
                for event_id in chunk:
                    seq = self._by_event.pop(event_id, None)
                    if seq is not None:
                        self._in_flight.pop(seq, None)
            self._depth -= deleted
            self._confirmed += deleted
        return deleted

    def unconfirmed_in_flight(self) -> int:
        return len(self._in_flight)

    def has_unsent(self) -> bool:
        """Anything never sent in this process (cheap: one indexed probe per channel)."""
        with self._lock:
            for kind in Kind:
                row = self._db.execute(
                    "SELECT 1 FROM outbox WHERE channel = ? AND seq > ? LIMIT 1",
                    (kind.value, self._cursor[kind]),
                ).fetchone()
                if row is not None:
                    return True
        return False

    def stats(self) -> OutboxStats:
        with self._lock:
            return OutboxStats(
                depth=self._depth,
                bytes=self._bytes,
                in_flight=len(self._in_flight),
                dropped_samples=self._dropped[Kind.SAMPLE],
                dropped_anomalies=self._dropped[Kind.ANOMALY],
                dropped_telemetry=self._dropped[Kind.TELEMETRY],
                confirmed=self._confirmed,
            )

    def event_ids(self, kind: Kind | None = None) -> list[str]:
        """Event ids waiting (for status pages and tests)."""
        with self._lock:
            if kind is None:
                rows = self._db.execute("SELECT event_id FROM outbox ORDER BY seq").fetchall()
            else:
                rows = self._db.execute(
                    "SELECT event_id FROM outbox WHERE channel = ? ORDER BY seq", (kind.value,)
                ).fetchall()
        return [event_id for (event_id,) in rows]


def open_outbox(
    state_dir: Path, *, max_bytes: int, synchronous: Literal["normal", "full"]
) -> Outbox:
    return Outbox(state_dir / OUTBOX_FILE, max_bytes=max_bytes, synchronous=synchronous)
