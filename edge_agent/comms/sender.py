"""Moves outbox entries to MQTT and deletes them when the control plane confirms them.

A bounded window: at most ``max_in_flight_messages`` publishes that the broker has not
yet acknowledged (paho would otherwise queue the whole backlog in memory, keyed by a
16-bit packet id), and at most ``max_unconfirmed_events`` events sent and not yet
confirmed. Entries not confirmed within ``resend_after`` seconds are sent again, so a
broker that acknowledged a message and then lost it costs a delay, not the message.
Anomalies go first, then telemetry, then samples.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime

from pydantic import ValidationError

from edge_agent.comms.outbox import SEND_ORDER, Kind, Outbox, Pending
from edge_agent.comms.transport import Received, Transport
from edge_agent.protocol.messages import SCHEMA_VERSION, Confirmation
from edge_agent.protocol.topics import Channel, device_topic

logger = logging.getLogger(__name__)

_IDLE_WAIT = 0.25


def event_batch_json(device_id: str, events: Sequence[bytes]) -> bytes:
    """An ``EventBatch`` from stored ``ScoredEvent`` JSON, without parsing them again."""
    sent_at = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    head = (
        f'{{"schema_version":{SCHEMA_VERSION},"device_id":"{device_id}",'
        f'"sent_at":"{sent_at}","events":['
    ).encode()
    return head + b",".join(events) + b"]}"


class OutboxSender:
    def __init__(
        self,
        outbox: Outbox,
        transport: Transport,
        *,
        device_id: str,
        resend_after: float,
        max_in_flight_messages: int,
        max_unconfirmed_events: int,
        max_events_per_message: int,
        max_message_bytes: int,
    ) -> None:
        self.outbox = outbox
        self.transport = transport
        self.device_id = device_id
        self.resend_after = resend_after
        self.max_in_flight_messages = max_in_flight_messages
        self.max_unconfirmed_events = max_unconfirmed_events
        self.max_events_per_message = max_events_per_message
        self.max_message_bytes = max_message_bytes
        self.published_messages = 0
        self.invalid_confirmations = 0
        self._confirmations: queue.SimpleQueue[list[str]] = queue.SimpleQueue()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="outbox-sender", daemon=True)
        self._topics = {
            Kind.ANOMALY: device_topic(device_id, Channel.ANOMALIES),
            Kind.SAMPLE: device_topic(device_id, Channel.SAMPLES),
            Kind.TELEMETRY: device_topic(device_id, Channel.TELEMETRY),
        }
        transport.subscribe(device_topic(device_id, Channel.CONFIRMATIONS), self.on_confirmation)
        transport.set_listener(self.wake)

    def wake(self) -> None:
        self._wake.set()

    def on_confirmation(self, message: Received) -> None:
        """From the transport's thread: queue the ids; the sender thread deletes them."""
        try:
            confirmation = Confirmation.model_validate_json(message.payload)
        except ValidationError as exc:
            self.invalid_confirmations += 1
            logger.warning("ignoring a malformed confirmation: %s", exc.errors()[:1])
            return
        if confirmation.device_id != self.device_id:
            self.invalid_confirmations += 1
            logger.warning("ignoring a confirmation for device %s", confirmation.device_id)
            return
        self._confirmations.put([str(event_id) for event_id in confirmation.event_ids])
        self._wake.set()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=10)

    def flush(self, timeout: float) -> bool:
        """Wait until nothing is left unsent or unconfirmed (or the timeout); True if empty."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._wake.set()
            if self.outbox.stats().depth == 0:
                return True
            time.sleep(0.05)
        return self.outbox.stats().depth == 0

    def _drain_confirmations(self) -> None:
        ids: list[str] = []
        while True:
            try:
                ids.extend(self._confirmations.get_nowait())
            except queue.Empty:
                break
        if ids:
            self.outbox.confirm(ids)

    def _room(self) -> bool:
        return (
            self.transport.connected
            and self.transport.unacknowledged() < self.max_in_flight_messages
            and self.outbox.unconfirmed_in_flight() < self.max_unconfirmed_events
        )

    def _publish(self, kind: Kind, batch: list[Pending]) -> bool:
        topic = self._topics[kind]
        if kind is Kind.TELEMETRY:
            for index, pending in enumerate(batch):
                if not self.transport.publish(topic, pending.payload):
                    self.outbox.mark_sent(kind, batch[:index])
                    return False
                self.published_messages += 1
            self.outbox.mark_sent(kind, batch)
            return True
        payload = event_batch_json(self.device_id, [p.payload for p in batch])
        if not self.transport.publish(topic, payload):
            return False
        self.published_messages += 1
        self.outbox.mark_sent(kind, batch)
        return True

    def pump(self) -> int:
        """Send what the window allows now; returns the number of events handed over."""
        self._drain_confirmations()
        sent = 0
        for kind in SEND_ORDER:
            while self._room():
                room = self.max_unconfirmed_events - self.outbox.unconfirmed_in_flight()
                batch = self.outbox.next_batch(
                    kind,
                    limit=min(self.max_events_per_message, room),
                    max_bytes=self.max_message_bytes,
                    resend_after=self.resend_after,
                )
                if not batch or not self._publish(kind, batch):
                    break
                sent += len(batch)
        return sent

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.pump()
            except Exception:
                logger.exception("the outbox sender failed; retrying")
                self._stop.wait(1.0)
            self._wake.wait(_IDLE_WAIT)
            self._wake.clear()
