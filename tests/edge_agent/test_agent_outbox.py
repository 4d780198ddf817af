"""The outbox and its sender without a broker: persistence, drop policy, window, resends."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from edge_agent.comms.outbox import Entry, Kind, Outbox
from edge_agent.comms.sender import OutboxSender, event_batch_json
from edge_agent.comms.transport import Handler, Received
from edge_agent.protocol.messages import Confirmation, EventBatch, ScoredEvent
from edge_agent.protocol.topics import Channel, device_topic
from tests.edge_agent.support import traffic
from tests.processes import wait_for

DEVICE = str(uuid.uuid4())


def entry(kind: Kind, size: int = 100) -> Entry:
    return Entry(str(uuid.uuid4()), kind, b"x" * size)


class FakeTransport:
    """Takes publishes while 'connected'; acknowledges them only when told to."""

    def __init__(self) -> None:
        self.connected = True
        self.published: list[tuple[str, bytes]] = []
        self.handlers: dict[str, Handler] = {}
        self._unacked = 0
        self._listener: Callable[[], None] = lambda: None

    def start(self) -> None:
        return

    def stop(self, *, timeout: float = 5.0) -> None:
        return

    def subscribe(self, topic: str, handler: Handler) -> None:
        self.handlers[topic] = handler

    def set_listener(self, listener: Callable[[], None]) -> None:
        self._listener = listener

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> bool:
        if not self.connected:
            return False
        self.published.append((topic, payload))
        self._unacked += 1
        return True

    def unacknowledged(self) -> int:
        return self._unacked

    def ack_all(self) -> None:
        self._unacked = 0
        self._listener()


def test_entries_survive_reopening_and_leave_only_on_confirmation(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    outbox = Outbox(path, max_bytes=1 << 20)
    entries = [entry(Kind.ANOMALY), entry(Kind.SAMPLE), entry(Kind.TELEMETRY)]
    assert outbox.add(entries) == 3
    assert outbox.add(entries[:1]) == 0  # the same event id again: kept once
    outbox.close()

    reopened = Outbox(path, max_bytes=1 << 20)
    assert reopened.stats().depth == 3
    assert reopened.stats().bytes == 300
    assert reopened.confirm([entries[0].event_id, str(uuid.uuid4())]) == 1
    assert set(reopened.event_ids()) == {entries[1].event_id, entries[2].event_id}
    assert reopened.stats().bytes == 200
    reopened.close()


def test_when_full_samples_go_first_then_telemetry_and_every_drop_counts(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "o.sqlite3", max_bytes=1000)
    samples = [entry(Kind.SAMPLE) for _ in range(4)]
    telemetry = [entry(Kind.TELEMETRY) for _ in range(2)]
    anomalies = [entry(Kind.ANOMALY) for _ in range(4)]
    outbox.add(samples + telemetry + anomalies)  # exactly full
    assert outbox.stats().depth == 10

    assert outbox.add([entry(Kind.SAMPLE)]) == 0  # a new sample never evicts anything
    assert outbox.stats().dropped_samples == 1

    assert (
        outbox.add([entry(Kind.ANOMALY) for _ in range(5)]) == 5
    )  # evicts 4 samples + 1 telemetry
    stats = outbox.stats()
    assert stats.dropped_samples == 5
    assert stats.dropped_telemetry == 1
    assert stats.dropped_anomalies == 0
    assert set(outbox.event_ids(Kind.SAMPLE)) == set()
    assert outbox.event_ids(Kind.TELEMETRY) == [telemetry[1].event_id]  # the oldest went

    assert outbox.add([entry(Kind.TELEMETRY)]) == 0  # telemetry does not evict anomalies
    assert outbox.add([entry(Kind.ANOMALY), entry(Kind.ANOMALY)]) == 1
    stats = outbox.stats()
    assert stats.dropped_anomalies == 1  # only when nothing but anomalies is left
    assert stats.bytes <= 1000
    assert {e.event_id for e in anomalies} <= set(outbox.event_ids(Kind.ANOMALY))
    outbox.close()


def make_sender(outbox: Outbox, transport: FakeTransport, **overrides: float) -> OutboxSender:
    options: dict[str, float] = {
        "resend_after": 3600.0,
        "max_in_flight_messages": 3,
        "max_unconfirmed_events": 1000,
        "max_events_per_message": 10,
        "max_message_bytes": 1 << 20,
    } | overrides
    return OutboxSender(outbox, transport, device_id=DEVICE, **options)  # type: ignore[arg-type]


def scored_event_payloads(n: int) -> list[Entry]:
    now = datetime.now(UTC)
    return [
        Entry(
            str(event_id),
            Kind.ANOMALY,
            ScoredEvent(
                event_id=event_id,
                transaction=tx,
                features=[0.0] * 31,
                feature_spec_version=1,
                score=0.99,
                threshold=0.9,
                flagged=True,
                model_version="1",
                scored_at=now,
            )
            .model_dump_json()
            .encode(),
        )
        for tx in traffic(n)
        for event_id in [uuid.uuid4()]
    ]


def test_window_bounds_unacknowledged_publishes_and_batches_are_valid(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "o.sqlite3", max_bytes=1 << 24)
    outbox.add(scored_event_payloads(95))
    transport = FakeTransport()
    sender = make_sender(outbox, transport)

    assert sender.pump() == 30  # 3 messages of 10: the window is full
    assert len(transport.published) == 3
    assert sender.pump() == 0
    transport.ack_all()
    assert sender.pump() == 30
    transport.ack_all()
    assert sender.pump() == 30
    transport.ack_all()
    assert sender.pump() == 5
    assert sender.pump() == 0  # everything is in flight; nothing is due again yet

    sent_ids: list[str] = []
    for topic, payload in transport.published:
        assert topic == device_topic(DEVICE, Channel.ANOMALIES)
        batch = EventBatch.model_validate_json(payload)  # exactly what ingest parses
        assert batch.device_id == DEVICE
        sent_ids += [str(e.event_id) for e in batch.events]
    assert sorted(sent_ids) == sorted(outbox.event_ids())
    outbox.close()


def test_confirmations_delete_and_unconfirmed_are_sent_again(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "o.sqlite3", max_bytes=1 << 24)
    entries = scored_event_payloads(6)
    outbox.add(entries)
    transport = FakeTransport()
    sender = make_sender(outbox, transport, resend_after=0.2, max_in_flight_messages=100)
    assert sender.pump() == 6
    transport.ack_all()
    confirmations = transport.handlers[device_topic(DEVICE, Channel.CONFIRMATIONS)]

    def confirm(device_id: str, ids: list[str]) -> None:
        payload = Confirmation(
            device_id=device_id, event_ids=[uuid.UUID(i) for i in ids], stored_at=datetime.now(UTC)
        ).model_dump_json()
        confirmations(Received("t", payload.encode(), lambda: None))

    confirm(DEVICE, [e.event_id for e in entries[:4]])
    confirm(str(uuid.uuid4()), [e.event_id for e in entries[4:]])  # not ours: ignored
    confirmations(Received("t", b"{not json", lambda: None))
    assert sender.invalid_confirmations == 2
    sender.pump()
    assert outbox.stats().depth == 2

    wait_for(lambda: sender.pump() == 2, timeout=10, what="the unconfirmed two sent again")
    resent = EventBatch.model_validate_json(transport.published[-1][1])
    assert {str(e.event_id) for e in resent.events} == {e.event_id for e in entries[4:]}


def test_disconnected_transport_keeps_everything(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "o.sqlite3", max_bytes=1 << 24)
    outbox.add(scored_event_payloads(3))
    transport = FakeTransport()
    transport.connected = False
    sender = make_sender(outbox, transport)
    assert sender.pump() == 0
    assert outbox.stats().depth == 3
    transport.connected = True
    assert sender.pump() == 3


def test_event_batch_json_matches_the_wire_model() -> None:
    payloads = [e.payload for e in scored_event_payloads(2)]
    batch = EventBatch.model_validate_json(event_batch_json(DEVICE, payloads))
    assert len(batch.events) == 2
    assert batch.sent_at.tzinfo is not None


@pytest.mark.parametrize("synchronous", ["normal", "full"])
def test_wal_mode(tmp_path: Path, synchronous: str) -> None:
    outbox = Outbox(tmp_path / "o.sqlite3", max_bytes=1 << 20, synchronous=synchronous)  # type: ignore[arg-type]
    mode = outbox._db.execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"
    outbox.close()
