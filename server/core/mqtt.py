"""The control plane's own MQTT publisher: retained desired states to devices."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from server.core.config import Settings

logger = logging.getLogger(__name__)


# Published but not yet acknowledged, at most: below the 65,535 MQTT message ids.
_MAX_UNACKED = 50_000


class PublishError(RuntimeError):
    """The broker refused the control plane, or did not acknowledge in time."""


def publish_retained(
    settings: Settings, messages: Sequence[tuple[str, bytes]], *, timeout: float = 60.0
) -> int:
    """Publish each (topic, payload) retained at QoS 1 and wait until the broker has them all.

    Returns how many were acknowledged. The embedded broker speaks MQTT 3.1.1 only.
    """
    if not messages:
        return 0
    protocol = (
        MQTTProtocolVersion.MQTTv311 if settings.run_embedded_broker else MQTTProtocolVersion.MQTTv5
    )
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=protocol)
    if settings.mqtt.username:
        password = settings.mqtt.password.get_secret_value() if settings.mqtt.password else None
        client.username_pw_set(settings.mqtt.username, password)
    if settings.mqtt.tls:
        client.tls_set()
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    try:
        client.connect(settings.mqtt.host, settings.mqtt_port, keepalive=30)
    except OSError as exc:
        raise PublishError(f"cannot reach the MQTT broker: {exc}") from exc
    client.loop_start()
    try:
        infos: list[mqtt.MQTTMessageInfo] = []
        for topic, payload in messages:
            if len(infos) >= _MAX_UNACKED:
                # Message ids are 16 bits: paho refuses (ERR_QUEUE_SIZE) a message whose id
                # is still awaiting its acknowledgement, so fewer than 65,535 may be pending.
                oldest = infos[-_MAX_UNACKED]
                oldest.wait_for_publish(timeout=timeout)
                if not oldest.is_published():
                    raise PublishError(f"the broker did not acknowledge a message (rc {oldest.rc})")
            infos.append(client.publish(topic, payload, qos=1, retain=True))
        deadline = time.monotonic() + timeout
        for info in infos:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise PublishError("the broker did not acknowledge every desired state in time")
            info.wait_for_publish(timeout=remaining)
            if not info.is_published():
                raise PublishError(f"the broker did not acknowledge a message (rc {info.rc})")
        return len(infos)
    finally:
        client.disconnect()
        client.loop_stop()
