"""A small transport interface, and its paho-mqtt 2 implementation.

What the rest of the agent needs from MQTT is small: publish at QoS 1 and learn when
the broker has acknowledged it, receive the messages of a few subscriptions, and know
whether it is connected. Keeping paho behind :class:`Transport` keeps its callbacks in
one place and lets tests drive the sender without a broker.

MQTT hygiene: ``CallbackAPIVersion.VERSION2``; subscriptions are made in ``on_connect``,
so a reconnect restores them; a retained last will on the device's ``status`` topic says
offline, and a retained ``online`` is published after every connect; CONNACK and SUBACK
reason codes are checked, and a refused connection is treated as refused (no
publishing), with a longer back-off when the refusal is about credentials.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Literal, Protocol

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

logger = logging.getLogger(__name__)

# CONNACK reason codes about who we are: retrying soon will not help.
_REFUSED_CREDENTIALS: Final = frozenset({0x84, 0x85, 0x86, 0x87, 0x8A, 0x8C})
_RECONNECT_MIN: Final = 1
_RECONNECT_MAX: Final = 30
_REFUSED_RECONNECT_MIN: Final = 30
_REFUSED_RECONNECT_MAX: Final = 300


@dataclass(frozen=True, slots=True)
class Received:
    """An incoming message; ``ack`` acknowledges it when the subscription is manual."""

    topic: str
    payload: bytes
    ack: Callable[[], None]


Handler = Callable[[Received], None]


class Transport(Protocol):
    """What the agent needs from a message transport."""

    @property
    def connected(self) -> bool: ...

    def start(self) -> None: ...

    def stop(self, *, timeout: float = 5.0) -> None: ...

    def subscribe(self, topic: str, handler: Handler) -> None:
        """Register before start(); the subscription is renewed on every connect."""

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> bool:
        """Hand a QoS 1 message over; False if it was not taken (not connected)."""

    def unacknowledged(self) -> int:
        """Publishes handed over and not yet acknowledged by the broker."""

    def set_listener(self, listener: Callable[[], None]) -> None:
        """Called (from the transport's thread) on connect, disconnect and acknowledgements."""


@dataclass(frozen=True, slots=True)
class MqttOptions:
    host: str
    port: int
    client_id: str
    version: Literal["5", "3.1.1"] = "5"
    username: str | None = None
    password: str | None = None
    tls: bool = False
    keepalive: int = 30
    clean: bool = True
    manual_ack: bool = False
    session_expiry_seconds: int = 0
    will_topic: str | None = None
    will_payload: bytes | None = None
    online_topic: str | None = None
    online_payload: Callable[[], bytes] | None = None
    max_inflight: int = 1000


class MqttTransport:
    """paho-mqtt 2 behind :class:`Transport`; runs paho's network loop in its thread."""

    def __init__(self, options: MqttOptions) -> None:
        self.options = options
        self._mqtt5 = options.version == "5"
        self._handlers: dict[str, Handler] = {}
        self._connected = False
        self._lock = threading.Lock()
        self._unacked: set[int] = set()
        self._early_acks: set[int] = set()
        self._listener: Callable[[], None] = lambda: None
        self._stopping = False
        self.refused_reason: str | None = None
        self.publish_refusals = 0
        self.client = self._make_client()

    def _make_client(self) -> mqtt.Client:
        options = self.options
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=options.client_id,
            clean_session=None if self._mqtt5 else options.clean,
            protocol=MQTTProtocolVersion.MQTTv5 if self._mqtt5 else MQTTProtocolVersion.MQTTv311,
            manual_ack=options.manual_ack,
        )
        if options.username is not None:
            client.username_pw_set(options.username, options.password)
        if options.tls:
            client.tls_set()
        if options.will_topic is not None:
            client.will_set(options.will_topic, options.will_payload, qos=1, retain=True)
        client.max_inflight_messages_set(options.max_inflight)
        client.reconnect_delay_set(min_delay=_RECONNECT_MIN, max_delay=_RECONNECT_MAX)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        return client

    # --- Transport ----------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._connected

    def set_listener(self, listener: Callable[[], None]) -> None:
        self._listener = listener

    def subscribe(self, topic: str, handler: Handler) -> None:
        self._handlers[topic] = handler

    def start(self) -> None:
        options = self.options
        if self._mqtt5:
            # 2026-12-03: paho's Properties has no annotations.
            properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            properties.SessionExpiryInterval = options.session_expiry_seconds
            self.client.connect_async(
                options.host,
                options.port,
                keepalive=options.keepalive,
                clean_start=options.clean,
                properties=properties,
            )
        else:
            self.client.connect_async(options.host, options.port, keepalive=options.keepalive)
        self.client.loop_start()
        logger.info(
            "MQTT %s client %s connecting to %s:%d",
            options.version,
            options.client_id,
            options.host,
            options.port,
        )

    def stop(self, *, timeout: float = 5.0) -> None:
        """Say offline (retained) if connected, then disconnect cleanly."""
        self._stopping = True
        options = self.options
        if self._connected and options.will_topic is not None:
            info = self.client.publish(options.will_topic, options.will_payload, qos=1, retain=True)
            try:
                info.wait_for_publish(timeout=timeout)
            except (RuntimeError, ValueError):
                logger.debug("could not say offline before disconnecting")
        self.client.disconnect()
        self.client.loop_stop()
        self._connected = False

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> bool:
        if not self._connected:
            return False
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
            logger.warning("publish to %s not taken: %s", topic, mqtt.error_string(info.rc))
            return False
        # With NO_CONN paho keeps the message and sends it after reconnecting.
        with self._lock:
            if info.mid in self._early_acks:
                self._early_acks.discard(info.mid)
            else:
                self._unacked.add(info.mid)
        return True

    def unacknowledged(self) -> int:
        return len(self._unacked)

    # --- paho callbacks (network thread) ------------------------------------------------

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.ConnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason_code.is_failure:
            self._connected = False
            self.refused_reason = str(reason_code)
            if reason_code.value in _REFUSED_CREDENTIALS:
                logger.error(
                    "the broker refused %s: %s; retrying slowly",
                    self.options.client_id,
                    reason_code,
                )
                client.reconnect_delay_set(_REFUSED_RECONNECT_MIN, _REFUSED_RECONNECT_MAX)
            else:
                logger.warning("the broker refused the connection (%s); retrying", reason_code)
            return
        self.refused_reason = None
        client.reconnect_delay_set(_RECONNECT_MIN, _RECONNECT_MAX)
        self._connected = True
        logger.info("MQTT connected (session present: %s)", flags.session_present)
        if self._handlers:
            client.subscribe([(topic, 1) for topic in self._handlers])
        options = self.options
        if options.online_topic is not None and options.online_payload is not None:
            self.publish(options.online_topic, options.online_payload(), retain=True)
        self._listener()

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.DisconnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        was_connected = self._connected
        self._connected = False
        if was_connected and not self._stopping:
            logger.warning("MQTT disconnected (%s); reconnecting", reason_code)
        self._listener()

    def _on_subscribe(
        self,
        client: mqtt.Client,
        userdata: Any,
        mid: int,
        reason_codes: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        refused = [str(code) for code in reason_codes if code.is_failure]
        if refused:
            logger.error("the broker refused subscriptions: %s", ", ".join(refused))

    def _on_publish(
        self,
        client: mqtt.Client,
        userdata: Any,
        mid: int,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason_code.is_failure:
            # The broker did not take it (e.g. not authorised); the outbox sends it again.
            self.publish_refusals += 1
            logger.warning("the broker refused a publish: %s", reason_code)
        with self._lock:
            if mid in self._unacked:
                self._unacked.discard(mid)
            else:
                self._early_acks.add(mid)
        self._listener()

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        handler = self._handlers.get(message.topic)
        if handler is None:
            handler = next(
                (
                    h
                    for pattern, h in self._handlers.items()
                    if mqtt.topic_matches_sub(pattern, message.topic)
                ),
                None,
            )
        mid, qos = message.mid, message.qos

        def ack() -> None:
            if self.options.manual_ack and qos > 0:
                client.ack(mid, qos)

        if handler is None:
            ack()
            return
        try:
            handler(Received(message.topic, bytes(message.payload), ack))
        except Exception:
            logger.exception("handler for %s failed", message.topic)
