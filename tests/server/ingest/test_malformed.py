"""Bad input of every kind, interleaved with good: the good is stored, the bad dead-lettered."""

from __future__ import annotations

import contextlib
import json
import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import select

from edge_agent.protocol.messages import LatencySummary, OutboxSummary, Telemetry
from edge_agent.protocol.topics import Channel, device_topic
from server.common.actor import Actor
from server.core.db import session_scope, utcnow
from server.devices import service as devices_service
from server.ingest.orm import DeadLetter
from tests.processes import wait_for
from tests.server.ingest.conftest import Broker, ingest_settings, stored_keys
from tests.server.ingest.fleet import Fleet, batch_payload, make_event

MAX_MESSAGE_BYTES = 4096
DEAD_LETTER_MAX_BYTES = 1024


def _telemetry(device_id: str) -> str:
    return Telemetry(
        event_id=uuid.uuid4(),
        device_id=device_id,
        sent_at=utcnow(),
        window_seconds=60,
        agent_version="0.3.0",
        model_version="m-1",
        feature_spec_version=1,
        scored=10,
        flagged=1,
        inference_errors=0,
        model_load_failures=0,
        latency=LatencySummary(p50_ms=1, p95_ms=2, p99_ms=3),
        score_histogram=[0] * 20,
        outbox=OutboxSummary(depth=0, dropped_samples=0, dropped_anomalies=0),
    ).model_dump_json()


def _bad_messages(
    good: str, other: str, revoked: str, fleet: Fleet
) -> list[tuple[str, str, bytes]]:
    """(expected reason, topic, payload) for every kind of bad message."""
    topic = device_topic(good, Channel.ANOMALIES)
    valid = json.loads(batch_payload(good, [make_event(fleet.rng)]))
    stranger = str(uuid.uuid4())
    wrong_features = json.loads(batch_payload(good, [make_event(fleet.rng)]))
    wrong_features["events"][0]["features"] = [0.5, 0.5]
    big = batch_payload(good, [make_event(fleet.rng) for _ in range(10)])
    assert len(big) > MAX_MESSAGE_BYTES
    return [
        ("bad_json", topic, b"{this is not json"),
        ("bad_json", topic, b"\xff\xfe\x00garbage"),
        ("bad_json", topic, b""),
        ("invalid_schema", topic, json.dumps({**valid, "events": []}).encode()),
        ("invalid_schema", topic, json.dumps({**valid, "surprise": 1}).encode()),
        ("invalid_schema", topic, json.dumps([1, 2, 3]).encode()),
        ("invalid_schema", topic, json.dumps(wrong_features).encode()),
        ("unknown_schema_version", topic, json.dumps({**valid, "schema_version": 2}).encode()),
        ("unknown_schema_version", topic, json.dumps({**valid, "schema_version": "1"}).encode()),
        ("oversize", topic, big),
        ("device_mismatch", topic, batch_payload(other, [make_event(fleet.rng)])),
        (
            "unknown_device",
            device_topic(stranger, Channel.ANOMALIES),
            batch_payload(stranger, [make_event(fleet.rng)]),
        ),
        (
            "unknown_device",
            "edgeplane/v1/devices/not-a-device/anomalies",
            batch_payload("not-a-device", [make_event(fleet.rng)]),
        ),
        (
            "revoked_device",
            device_topic(revoked, Channel.ANOMALIES),
            batch_payload(revoked, [make_event(fleet.rng)]),
        ),
        ("wrong_channel", topic, _telemetry(good).encode()),
        (
            "wrong_channel",
            device_topic(good, Channel.TELEMETRY),
            batch_payload(good, [make_event(fleet.rng)]),
        ),
    ]


def test_malformed_messages_are_dead_lettered_and_valid_ones_stored(
    broker: Broker, enroll: Any, run_consumer: Callable[..., Any]
) -> None:
    good, other, revoked = enroll(3)
    with session_scope() as session:
        devices_service.revoke_device(
            session, actor=Actor.system("test"), device_id=uuid.UUID(revoked.id)
        )
    run_consumer(
        ingest_settings(
            broker,
            max_message_bytes=MAX_MESSAGE_BYTES,
            dead_letter_max_bytes=DEAD_LETTER_MAX_BYTES,
        )
    )
    fleet = Fleet(broker.port, [good.id, other.id], mqtt5=broker.mqtt5)
    try:
        fleet.publish_round(1)
        fleet.wait_all_confirmed(timeout=60, resend_after=2)

        bad = _bad_messages(good.id, other.id, revoked.id, fleet)
        for _, topic, payload in bad:
            fleet.publish_round(1)
            fleet.client.publish(topic, payload, qos=1)
        fleet.publish_round(2)
        fleet.wait_all_confirmed(timeout=90, resend_after=None)

        def dead_letters() -> list[DeadLetter]:
            with session_scope() as session:
                return list(session.scalars(select(DeadLetter).order_by(DeadLetter.id)))

        # On a timeout the comparison below says which are missing.
        with contextlib.suppress(AssertionError):
            wait_for(lambda: len(dead_letters()) >= len(bad), timeout=60, what="dead letters")
        letters = dead_letters()
    finally:
        fleet.close()

    assert Counter(d.reason for d in letters) == Counter(reason for reason, _, _ in bad)
    assert sorted(stored_keys()) == sorted(fleet.published)
    by_payload = {(d.topic, d.payload_size): d for d in letters}
    for reason, topic, payload in bad:
        letter = by_payload[(topic, len(payload))]
        assert letter.reason == reason
        assert letter.payload == payload[:DEAD_LETTER_MAX_BYTES]
        assert letter.truncated is (len(payload) > DEAD_LETTER_MAX_BYTES)
        assert letter.detail
        assert letter.received_at is not None
    mismatch = next(d for d in letters if d.reason == "device_mismatch")
    assert mismatch.topic_device_id == good.id


@pytest.mark.production_only
def test_a_message_postgresql_cannot_store_is_set_aside_alone(
    broker: Broker, enroll: Any, run_consumer: Callable[..., Any]
) -> None:
    """A NUL character passes validation, but PostgreSQL text refuses it: the batch is
    retried one message at a time, and only that message is dead-lettered."""
    (device,) = enroll(1)
    run_consumer(ingest_settings(broker, flush_interval_ms=500))
    fleet = Fleet(broker.port, [device.id], mqtt5=broker.mqtt5)
    try:
        fleet.publish_round(1)
        fleet.wait_all_confirmed(timeout=60, resend_after=2)
        poisoned = json.loads(batch_payload(device.id, [make_event(fleet.rng)]))
        poisoned["events"][0]["transaction"]["store_id"] = "store\u0000one"
        fleet.publish_round(3)
        fleet.client.publish(
            device_topic(device.id, Channel.ANOMALIES), json.dumps(poisoned).encode(), qos=1
        )
        fleet.publish_round(3)
        fleet.wait_all_confirmed(timeout=60, resend_after=None)

        def letters() -> list[DeadLetter]:
            with session_scope() as session:
                return list(session.scalars(select(DeadLetter)))

        wait_for(lambda: len(letters()) == 1, timeout=60, what="the dead letter")
    finally:
        fleet.close()
    assert sorted(stored_keys()) == sorted(fleet.published)
    (letter,) = letters()
    assert letter.reason == "unstorable"
