"""MQTT topics: versioned, one device per path segment.

A device publishes only under its own id (the broker's ACL enforces it, and the
ingest checks it again), and reads only its own ``desired`` and ``confirmations``.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final

TOPIC_ROOT: Final = "edgeplane/v1/devices"
INGEST_SHARE_GROUP: Final = "edgeplane-ingest"


class Channel(StrEnum):
    # device -> control plane
    ANOMALIES = "anomalies"
    SAMPLES = "samples"
    TELEMETRY = "telemetry"
    STATUS = "status"
    # control plane -> device
    DESIRED = "desired"
    CONFIRMATIONS = "confirmations"


DEVICE_PUBLISHES: Final = frozenset(
    {Channel.ANOMALIES, Channel.SAMPLES, Channel.TELEMETRY, Channel.STATUS}
)
INGESTED: Final = (Channel.ANOMALIES, Channel.SAMPLES, Channel.TELEMETRY)


def device_topic(device_id: str, channel: Channel) -> str:
    if not device_id or "/" in device_id or "+" in device_id or "#" in device_id:
        raise ValueError(f"invalid device id for a topic: {device_id!r}")
    return f"{TOPIC_ROOT}/{device_id}/{channel.value}"


def parse_device_topic(topic: str) -> tuple[str, Channel] | None:
    """(device id, channel) of a device topic, or None if the topic is not one."""
    prefix = TOPIC_ROOT + "/"
    if not topic.startswith(prefix):
        return None
    parts = topic[len(prefix) :].split("/")
    if len(parts) != 2 or not parts[0]:
        return None
    try:
        return parts[0], Channel(parts[1])
    except ValueError:
        return None


def ingest_subscription(channel: Channel, *, shared: bool) -> str:
    """The ingest's subscription: shared (MQTT 5) so that several ingest processes split
    the load, or plain (MQTT 3.1.1, one consumer)."""
    topic = f"{TOPIC_ROOT}/+/{channel.value}"
    return f"$share/{INGEST_SHARE_GROUP}/{topic}" if shared else topic
