"""Exactly once in the database through crashes: of the broker, of ingest, across replicas.

Every wait here is bounded and generous; nothing asserts how long anything took.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.conftest import PROFILE
from tests.processes import Mosquitto, wait_for
from tests.server.ingest.conftest import Broker, stored_keys
from tests.server.ingest.fleet import Fleet, IngestProcess

DEVICES = 4
ROUNDS = 30
# Mixed message sizes: one event per message, and batches as agents send them.
SIZES = (1, 3, 10)


def _publish_rounds(fleet: Fleet, rounds: int, pause: float = 0.02) -> None:
    for index in range(rounds):
        fleet.publish_round(SIZES[index % len(SIZES)])
        time.sleep(pause)


def _expected_events(rounds: int) -> int:
    return DEVICES * sum(SIZES[i % len(SIZES)] for i in range(rounds))


def _assert_exactly_once(fleet: Fleet) -> None:
    keys = stored_keys()
    assert len(keys) == len(set(keys)), "an event is stored twice"
    assert set(keys) == fleet.published, (
        f"{len(fleet.published - set(keys))} published events missing, "
        f"{len(set(keys) - fleet.published)} unexpected"
    )


def _await_ingest(fleet: Fleet) -> None:
    """Once an event is confirmed, ingest is subscribed (and the broker holds its session)."""
    fleet.publish_round(1)
    fleet.wait_all_confirmed(timeout=60, resend_after=2)


def _ingest_version() -> str:
    return "5" if PROFILE == "production" else "3.1.1"


def test_broker_killed_and_restarted_mid_stream_loses_and_doubles_nothing(
    enroll: Any,
    mosquitto_factory: Callable[..., Mosquitto],
    ingest_factory: Callable[..., IngestProcess],
) -> None:
    devices = enroll(DEVICES)
    mosquitto = mosquitto_factory()
    ingest = ingest_factory(mosquitto.port, _ingest_version())
    fleet = Fleet(mosquitto.port, [d.id for d in devices], mqtt5=_ingest_version() == "5")
    try:
        _await_ingest(fleet)
        _publish_rounds(fleet, ROUNDS // 3)

        # Publishing goes on while the broker dies without a chance to save anything.
        publisher = threading.Thread(target=_publish_rounds, args=(fleet, ROUNDS, 0.05))
        publisher.start()
        time.sleep(0.3)
        mosquitto.kill()
        time.sleep(1.0)
        mosquitto.start()
        publisher.join(timeout=120)
        assert not publisher.is_alive()

        # Like the agent's outbox: whatever is unconfirmed is sent again after a while.
        fleet.wait_all_confirmed(timeout=240, resend_after=5)
        assert len(fleet.published) == (
            DEVICES + _expected_events(ROUNDS // 3) + _expected_events(ROUNDS)
        )
        _assert_exactly_once(fleet)
    finally:
        fleet.close()
    assert ingest.process is not None
    assert ingest.process.poll() is None, ingest.log()


def test_ingest_killed_mid_batch_and_restarted_loses_and_doubles_nothing(
    enroll: Any, broker: Broker, ingest_factory: Callable[..., IngestProcess]
) -> None:
    devices = enroll(DEVICES)
    # Slow flushes make big batches, so the kill lands inside one.
    ingest = ingest_factory(broker.port, broker.version, EDGEPLANE_INGEST__FLUSH_INTERVAL_MS="300")
    fleet = Fleet(broker.port, [d.id for d in devices], mqtt5=broker.mqtt5)
    try:
        _await_ingest(fleet)

        total = len(fleet.published) + _expected_events(ROUNDS)
        publisher = threading.Thread(target=_publish_rounds, args=(fleet, ROUNDS, 0.05))
        publisher.start()
        wait_for(lambda: len(stored_keys()) > total // 5, timeout=120, what="a fifth stored")
        ingest.kill()
        publisher.join(timeout=120)
        assert not publisher.is_alive()
        ingest.start()

        # Mosquitto redelivers what ingest never acknowledged: no resending needed. amqtt
        # does not redeliver to a returning session, so there the agents' outbox resends.
        fleet.wait_all_confirmed(timeout=180, resend_after=None if broker.mqtt5 else 5)
        assert len(fleet.published) == total
        _assert_exactly_once(fleet)
    finally:
        fleet.close()


@pytest.mark.production_only
def test_two_ingest_processes_share_the_subscription(
    enroll: Any,
    mosquitto_factory: Callable[..., Mosquitto],
    ingest_factory: Callable[..., IngestProcess],
) -> None:
    devices = enroll(DEVICES)
    mosquitto = mosquitto_factory()
    first = ingest_factory(mosquitto.port, "5")
    second = ingest_factory(mosquitto.port, "5")
    fleet = Fleet(mosquitto.port, [d.id for d in devices], mqtt5=True)
    try:
        for process in (first, second):
            wait_for(
                lambda p=process: p.metric("edgeplane_ingest_connected") == 1,  # type: ignore[misc]
                timeout=60,
                what="both ingest processes to connect",
            )
        _await_ingest(fleet)
        _publish_rounds(fleet, ROUNDS)
        fleet.wait_all_confirmed(timeout=180, resend_after=10)
        _assert_exactly_once(fleet)
        stored = [
            p.metric("edgeplane_ingest_events_stored_total", channel="anomalies")
            for p in (first, second)
        ]
        assert all(count > 0 for count in stored), stored
        assert sum(stored) == len(fleet.published)
    finally:
        fleet.close()
