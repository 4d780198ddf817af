"""The ingest process: MQTT in, batches into the database, acknowledgements out.

paho's network thread only queues messages. The main thread collects them into batches
(until a batch is big enough, or a few tens of milliseconds after its first message),
validates them, stores each batch in one transaction and only after the commit
confirms the stored event ids to each device and acknowledges the batch's messages.

A crash at any point loses nothing: unacknowledged messages are redelivered (persistent
session, stable client id) and stored again at no cost, because (device id, event id) is
unique; their ids are confirmed again.

MQTT 5 (production) subscribes through a shared subscription, so any number of ingest
processes split the load. MQTT 3.1.1 (the embedded broker) uses a plain subscription:
there, run exactly one ingest process.
"""

from __future__ import annotations

import gc
import logging
import queue
import signal
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import FrameType
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from edge_agent.protocol.messages import MAX_EVENTS_PER_MESSAGE, Confirmation, Telemetry
from edge_agent.protocol.topics import INGESTED, Channel, device_topic, ingest_subscription
from server.core.config import Settings
from server.core.db import WRITER, utcnow
from server.devices import service as devices_service
from server.ingest import metrics
from server.ingest import service as ingest_service

logger = logging.getLogger(__name__)

# CONNACK reason codes that no retry will fix (3.1.1 codes are mapped onto these by paho).
_REFUSED_FOR_GOOD = frozenset({0x84, 0x85, 0x86, 0x87, 0x8C})
_MAX_DEVICE_CACHE = 100_000


@dataclass(slots=True)
class _Received:
    topic: str
    payload: bytes | bytearray
    mid: int
    qos: int
    generation: int
    verdict: ingest_service.Parsed | ingest_service.Rejected | None = None


class DeviceCache:
    """Who sent what, without a query per message; entries expire after ``ttl`` seconds."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._entries: dict[uuid.UUID, tuple[float, devices_service.DeviceIdentity | None]] = {}

    def lookup(
        self, session: Session, device_ids: set[uuid.UUID]
    ) -> dict[uuid.UUID, devices_service.DeviceIdentity | None]:
        now = time.monotonic()
        stale = [
            d for d in device_ids if (e := self._entries.get(d)) is None or now - e[0] > self.ttl
        ]
        if stale:
            if len(self._entries) > _MAX_DEVICE_CACHE:
                self._entries.clear()
            found = devices_service.identify(session, stale)
            for device_id in stale:
                self._entries[device_id] = (now, found.get(device_id))
        return {d: self._entries[d][1] for d in device_ids}


class IngestError(RuntimeError):
    """The broker refused us for a reason that retrying will not fix."""


class IngestConsumer:
    def __init__(
        self,
        settings: Settings,
        sessions: sessionmaker[Session],
        *,
        client_id: str | None = None,
    ) -> None:
        self.settings = settings
        self.options = settings.ingest
        self.sessions = sessions
        self.client_id = (
            client_id or self.options.client_id or f"edgeplane-ingest-{socket.gethostname()}"
        )
        self.mqtt5 = settings.ingest_mqtt_version == "5"
        self.devices = DeviceCache(self.options.device_cache_seconds)
        self._queue: queue.SimpleQueue[_Received] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._refused: str | None = None
        # Bumped on every (re)connection: a message is acknowledged only on the connection
        # that delivered it; after a reconnect the broker sends it again instead.
        self._generation = 0
        self._db_error_backoff = 0.5
        self.client = self._make_client()

    # --- MQTT -------------------------------------------------------------------------------

    def _make_client(self) -> mqtt.Client:
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            clean_session=None if self.mqtt5 else False,
            protocol=MQTTProtocolVersion.MQTTv5 if self.mqtt5 else MQTTProtocolVersion.MQTTv311,
            manual_ack=True,
        )
        username = self.settings.mqtt.ingest_username or self.settings.mqtt.username
        password = self.settings.mqtt.ingest_password or self.settings.mqtt.password
        if username:
            client.username_pw_set(username, password.get_secret_value() if password else None)
        if self.settings.mqtt.tls:
            client.tls_set()
        # Confirmations are QoS 1; let many be in flight, their count follows the batches.
        client.max_inflight_messages_set(1000)
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        return client

    def _connect(self) -> None:
        host, port = self.settings.mqtt.host, self.settings.mqtt_port
        if self.mqtt5:
            # 2026-12-03: paho's Properties has no annotations.
            properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            properties.SessionExpiryInterval = self.options.session_expiry_seconds
            properties.ReceiveMaximum = self.options.receive_maximum
            self.client.connect_async(
                host, port, keepalive=30, clean_start=False, properties=properties
            )
        else:
            self.client.connect_async(host, port, keepalive=30)
        logger.info(
            "ingest %s connecting to %s:%d with MQTT %s",
            self.client_id,
            host,
            port,
            self.settings.ingest_mqtt_version,
        )

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.ConnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason_code.is_failure:
            if reason_code.value in _REFUSED_FOR_GOOD:
                self._refuse(f"the broker refused the connection: {reason_code}")
            else:
                logger.warning("the broker refused the connection (%s); retrying", reason_code)
            return
        self._generation += 1
        metrics.CONNECTED.set(1)
        logger.info("connected (session present: %s)", flags.session_present)
        shared = self.mqtt5
        topics = [ingest_subscription(channel, shared=shared) for channel in INGESTED]
        if self.mqtt5:
            client.subscribe([(topic, SubscribeOptions(qos=1)) for topic in topics])
        else:
            client.subscribe([(topic, 1) for topic in topics])

    def _on_subscribe(
        self,
        client: mqtt.Client,
        userdata: Any,
        mid: int,
        reason_codes: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        refused = [str(code) for code in reason_codes if code.value not in (1, 2)]
        if refused:
            self._refuse(f"the broker refused the subscriptions at QoS 1: {', '.join(refused)}")
        else:
            logger.info("subscribed to the devices' %s", ", ".join(c.value for c in INGESTED))

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.DisconnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        self._generation += 1
        metrics.CONNECTED.set(0)
        if not self._stop.is_set():
            logger.warning("disconnected from the broker (%s); reconnecting", reason_code)

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        self._queue.put(
            _Received(message.topic, message.payload, message.mid, message.qos, self._generation)
        )

    def _refuse(self, why: str) -> None:
        logger.error("%s; stopping", why)
        self._refused = why
        self._stop.set()

    # --- batches ----------------------------------------------------------------------------

    def _collect(self) -> list[_Received]:
        """Wait for a first message, then gather more until the batch is full or due."""
        try:
            first = self._queue.get(timeout=0.25)
        except queue.Empty:
            return []
        batch = [first]
        events = self._judge(first)
        deadline = time.monotonic() + self.options.flush_interval_ms / 1000
        while (
            len(batch) < self.options.batch_max_messages and events < self.options.batch_max_events
        ):
            remaining = deadline - time.monotonic()
            try:
                item = (
                    self._queue.get(timeout=remaining)
                    if remaining > 0
                    else self._queue.get_nowait()
                )
            except queue.Empty:
                break
            batch.append(item)
            events += self._judge(item)
        return batch

    def _judge(self, item: _Received) -> int:
        item.verdict = ingest_service.parse(
            item.topic, item.payload, max_bytes=self.options.max_message_bytes
        )
        if isinstance(item.verdict, ingest_service.Parsed):
            body = item.verdict.body
            return 1 if isinstance(body, Telemetry) else len(body.events)
        return 1

    def _write(self, batch: Sequence[_Received]) -> ingest_service.BatchResult:
        """Store one batch in one transaction and commit it."""
        received_at = utcnow()
        with self.sessions() as session:
            session.connection(execution_options=WRITER)
            parsed = [i.verdict for i in batch if isinstance(i.verdict, ingest_service.Parsed)]
            identities = self.devices.lookup(session, {p.device_id for p in parsed})
            accepted: list[ingest_service.Accepted] = []
            dead: list[ingest_service.DeadLetterIn] = []
            for item in batch:
                verdict = item.verdict
                if isinstance(verdict, ingest_service.Parsed):
                    identity = identities[verdict.device_id]
                    refusal = ingest_service.admit(identity, verdict.device_id)
                    if refusal is None and identity is not None:
                        accepted.append(
                            ingest_service.Accepted(verdict, identity.cluster_id, received_at)
                        )
                        continue
                    verdict = refusal
                assert isinstance(verdict, ingest_service.Rejected)
                dead.append(
                    ingest_service.DeadLetterIn(
                        item.topic,
                        item.payload,
                        verdict.reason,
                        verdict.detail,
                        verdict.topic_device_id,
                        received_at,
                    )
                )
            result = ingest_service.store_batch(
                session,
                accepted=accepted,
                dead_letters=dead,
                dead_letter_max_bytes=self.options.dead_letter_max_bytes,
            )
            session.commit()
        for letter in dead:
            metrics.DEAD_LETTERS.labels(letter.reason.value).inc()
        now = time.time()
        for accepted_item in accepted:
            sent_at = accepted_item.message.body.sent_at.timestamp()
            metrics.EVENT_AGE_SECONDS.observe(max(now - sent_at, 0.0))
        return result

    def _is_transient(self, exc: BaseException) -> bool:
        if isinstance(exc, DBAPIError):
            if exc.connection_invalidated:
                return True
            exc = exc.orig if exc.orig is not None else exc
        dbapi = self.sessions.kw["bind"].dialect.dbapi
        return isinstance(exc, (dbapi.OperationalError, dbapi.InterfaceError))

    def _store(self, batch: Sequence[_Received]) -> ingest_service.BatchResult | None:
        """Write a batch; wait out database outages; set aside messages it cannot store.

        None only when asked to stop meanwhile: the batch is then left unacknowledged, and
        the broker delivers it again to the next session.
        """
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                try:
                    result = self._write(batch)
                except Exception as exc:
                    if self._is_transient(exc):
                        raise
                    logger.exception(
                        "a batch of %d messages failed; storing them one by one", len(batch)
                    )
                    result = self._store_one_by_one(batch)
            except Exception as exc:
                if not self._is_transient(exc):
                    raise
                metrics.DB_RETRIES.inc()
                logger.warning(
                    "database unavailable (%s); retrying in %.1f s",
                    type(exc).__name__,
                    self._db_error_backoff,
                )
                self._stop.wait(self._db_error_backoff)
                self._db_error_backoff = min(self._db_error_backoff * 2, 10.0)
                continue
            self._db_error_backoff = 0.5
            metrics.COMMIT_SECONDS.observe(time.monotonic() - started)
            return result
        return None

    def _store_one_by_one(self, batch: Sequence[_Received]) -> ingest_service.BatchResult:
        """Each message in its own transaction; one the database refuses is dead-lettered."""
        total = ingest_service.BatchResult()
        for item in batch:
            try:
                result = self._write([item])
            except Exception as exc:
                if self._is_transient(exc):
                    raise
                verdict = item.verdict
                item.verdict = ingest_service.Rejected(
                    ingest_service.Reason.UNSTORABLE,
                    f"{type(exc).__name__}: {exc}"[:1000],
                    str(verdict.device_id)
                    if isinstance(verdict, ingest_service.Parsed)
                    else verdict.topic_device_id
                    if verdict is not None
                    else None,
                )
                try:
                    result = self._write([item])
                except Exception:
                    logger.exception("dropping a message that cannot even be dead-lettered")
                    continue
            for channel, count in result.counts.items():
                merged = total.counts.setdefault(channel, ingest_service.ChannelCount())
                merged.events += count.events
                merged.stored += count.stored
            total.dead_letters += result.dead_letters
            for device_id, ids in result.confirmations.items():
                total.confirmations.setdefault(device_id, []).extend(ids)
        return total

    def _acknowledge(self, batch: Sequence[_Received], result: ingest_service.BatchResult) -> None:
        """Confirm to the devices, then acknowledge to the broker, in that order.

        Both leave on the same connection, in order: if the broker has the PUBACK it also
        has the confirmation. A crash before the PUBACKs leaves the messages to be
        delivered again, stored as duplicates and confirmed again; acknowledging first
        would lose the confirmations of a crash in between.
        """
        stored_at = utcnow()
        for device_id, event_ids in result.confirmations.items():
            topic = device_topic(str(device_id), Channel.CONFIRMATIONS)
            for start in range(0, len(event_ids), MAX_EVENTS_PER_MESSAGE):
                confirmation = Confirmation(
                    device_id=str(device_id),
                    event_ids=event_ids[start : start + MAX_EVENTS_PER_MESSAGE],
                    stored_at=stored_at,
                )
                self.client.publish(topic, confirmation.model_dump_json(), qos=1)
                metrics.CONFIRMATIONS.inc()
        generation = self._generation
        for item in batch:
            if item.qos > 0 and item.generation == generation:
                self.client.ack(item.mid, item.qos)

    def _count(self, batch: Sequence[_Received], result: ingest_service.BatchResult) -> None:
        received: dict[str, int] = {}
        for item in batch:
            verdict = item.verdict
            channel = (
                verdict.channel.value if isinstance(verdict, ingest_service.Parsed) else "unknown"
            )
            received[channel] = received.get(channel, 0) + 1
        for channel_name, count in received.items():
            metrics.MESSAGES_RECEIVED.labels(channel_name).inc(count)
        events = 0
        for channel, counts in result.counts.items():
            metrics.EVENTS_STORED.labels(channel.value).inc(counts.stored)
            metrics.DUPLICATES.labels(channel.value).inc(counts.duplicates)
            events += counts.events
        metrics.BATCH_MESSAGES.observe(len(batch))
        metrics.BATCH_EVENTS.observe(events)

    def run_once(self) -> int:
        """Collect, store, acknowledge and confirm one batch; returns its message count."""
        batch = self._collect()
        if not batch:
            return 0
        metrics.PENDING_MESSAGES.set(len(batch) + self._queue.qsize())
        result = self._store(batch)
        if result is None:
            return 0
        self._acknowledge(batch, result)
        self._count(batch, result)
        return len(batch)

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> None:
        """Consume until stop() (or SIGTERM); raise IngestError if the broker refuses us."""
        self._connect()
        self.client.loop_start()
        try:
            while not self._stop.is_set():
                self.run_once()
        finally:
            self.client.disconnect()
            self.client.loop_stop()
            metrics.CONNECTED.set(0)
        if self._refused:
            raise IngestError(self._refused)
        logger.info("ingest stopped")


def run(
    settings: Settings,
    sessions: sessionmaker[Session],
    *,
    client_id: str | None = None,
    metrics_port: int | None = None,
    install_signal_handlers: bool = True,
) -> None:
    """The ``edgeplane ingest`` process."""
    consumer = IngestConsumer(settings, sessions, client_id=client_id)
    # paho's network thread shares the interpreter with the batch writer: hand the GIL
    # over more often than every 5 ms, so acknowledgements and confirmations go out while
    # a batch is being parsed.
    sys.setswitchinterval(0.0005)
    # Objects made at start-up live as long as the process: keep them out of collections.
    gc.freeze()
    if metrics_port is not None:
        from prometheus_client import start_http_server

        start_http_server(metrics_port)
        logger.info("ingest metrics on port %d", metrics_port)
    if install_signal_handlers:
        handler: Callable[[int, FrameType | None], None] = lambda *_: consumer.stop()  # noqa: E731
        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)
    consumer.run()
