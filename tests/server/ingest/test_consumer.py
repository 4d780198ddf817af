"""Ingest end to end through a real broker: stored once, confirmed, duplicates confirmed again."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import select

from edge_agent.protocol.messages import LatencySummary, OutboxSummary, Telemetry
from edge_agent.protocol.topics import Channel, device_topic
from server.anomalies.orm import EventKind, ScoredEvent
from server.anomalies.service import decode_features
from server.core.db import session_scope, utcnow
from server.devices.orm import Device, DeviceStatus
from server.ingest.orm import TelemetryWindow
from tests.processes import wait_for
from tests.server.ingest.conftest import Broker, ingest_settings, stored_keys
from tests.server.ingest.fleet import Fleet, make_event


def test_events_are_stored_once_and_confirmed_again_when_repeated(
    broker: Broker, enroll: Any, run_consumer: Callable[..., Any]
) -> None:
    devices = enroll(3)
    run_consumer(ingest_settings(broker))
    fleet = Fleet(broker.port, [d.id for d in devices], mqtt5=broker.mqtt5)
    try:
        for size in (1, 5, 50):
            fleet.publish_round(size)
        repeated = [make_event(fleet.rng) for _ in range(20)]
        fleet.publish(devices[0].id, repeated, channel=Channel.ANOMALIES)
        fleet.wait_all_confirmed(timeout=90, resend_after=15)
        assert sorted(stored_keys()) == sorted(fleet.published)
        assert fleet.confirmed_again == 0

        # The same events again, as an agent that missed its confirmations sends them:
        # no new rows, and every id is confirmed again.
        fleet.publish(devices[0].id, repeated, channel=Channel.ANOMALIES)
        wait_for(
            lambda: fleet.confirmed_again == len(repeated),
            timeout=60,
            what="the repeated events to be confirmed again",
        )
        assert len(stored_keys()) == len(fleet.published) == 3 * 56 + 20
    finally:
        fleet.close()


def test_samples_and_telemetry_are_stored_and_update_the_device(
    broker: Broker, enroll: Any, run_consumer: Callable[..., Any]
) -> None:
    (device,) = enroll(1)
    run_consumer(ingest_settings(broker))
    fleet = Fleet(broker.port, [device.id], mqtt5=broker.mqtt5)
    try:
        sample = make_event(fleet.rng, flagged=False)
        fleet.publish(device.id, [sample], channel=Channel.SAMPLES)
        telemetry = Telemetry(
            event_id=make_event(fleet.rng).event_id,
            device_id=device.id,
            sent_at=utcnow(),
            window_seconds=60,
            agent_version="0.3.0",
            model_version="m-7",
            feature_spec_version=1,
            scored=1200,
            flagged=14,
            inference_errors=0,
            model_load_failures=0,
            latency=LatencySummary(p50_ms=1.5, p95_ms=3.0, p99_ms=6.0),
            score_histogram=[60] * 20,
            outbox=OutboxSummary(depth=3, dropped_samples=0, dropped_anomalies=0),
        )
        with fleet.lock:
            fleet.pending[(device.id, telemetry.event_id)] = (0.0, sample)
        fleet.client.publish(
            device_topic(device.id, Channel.TELEMETRY), telemetry.model_dump_json(), qos=1
        )
        fleet.wait_all_confirmed(timeout=60, resend_after=None)
    finally:
        fleet.close()

    with session_scope() as session:
        stored = session.scalars(select(ScoredEvent)).one()
        assert stored.kind is EventKind.SAMPLE
        assert stored.event_id == sample.event_id
        assert stored.transaction_id == sample.transaction.transaction_id
        assert decode_features(stored.features) == pytest.approx(sample.features, rel=1e-6)
        assert (stored.score, stored.model_version) == (sample.score, sample.model_version)
        window = session.scalars(select(TelemetryWindow)).one()
        assert (window.model_version, window.scored, window.flagged) == ("m-7", 1200, 14)
        row = session.get_one(Device, window.device_id)
        assert row.status is DeviceStatus.ONLINE
        assert row.model_version == "m-7"
        assert row.agent_version == "0.3.0"
        assert row.health["outbox"]["depth"] == 3
        assert row.last_seen_at is not None
