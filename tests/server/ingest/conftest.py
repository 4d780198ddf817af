"""Fixtures for ingest: brokers, enrolled devices, ingest consumers.

On the production profile every broker here is a Mosquitto of the test's own (MQTT 5,
shared subscriptions), so nothing another test publishes on the machine's broker can
reach it. On the embedded profile ingest runs against the embedded amqtt broker (MQTT
3.1.1) where the test allows it; tests that need Mosquitto itself (a kill, an ACL) still
start one. PostgreSQL-only tests are marked ``production_only`` and deselected (not
skipped) on the embedded run.
"""

from __future__ import annotations

import secrets
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from server.core.config import Settings, get_settings
from server.core.db import get_sessionmaker, session_scope
from server.ingest.consumer import IngestConsumer
from tests.conftest import EMBEDDED_MQTT_PORT, PROFILE
from tests.factories import enroll_device
from tests.processes import Mosquitto
from tests.server.ingest.fleet import IngestProcess

HERE = Path(__file__).parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if PROFILE != "embedded":
        return
    drop = [
        item
        for item in items
        if item.get_closest_marker("production_only") and HERE in item.path.parents
    ]
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = [item for item in items if item not in drop]


@dataclass(frozen=True)
class EnrolledDevice:
    id: str
    credential: str


@pytest.fixture
def enroll(committed_db: Engine) -> Callable[[int], list[EnrolledDevice]]:
    """enroll(n) -> n devices enrolled and committed (visible to other processes)."""

    def make(count: int, cluster_id: uuid.UUID | None = None) -> list[EnrolledDevice]:
        devices = []
        with session_scope() as session:
            for _ in range(count):
                enrollment = enroll_device(session, cluster_id=cluster_id)
                devices.append(EnrolledDevice(str(enrollment.device.id), enrollment.credential))
        return devices

    return make


@pytest.fixture
def mosquitto_factory(tmp_path: Path) -> Iterator[Callable[..., Mosquitto]]:
    started: list[Mosquitto] = []

    def make(**kwargs: object) -> Mosquitto:
        broker = Mosquitto(workdir=tmp_path / f"mosquitto-{len(started)}", **kwargs)  # type: ignore[arg-type]
        broker.start()
        started.append(broker)
        return broker

    yield make
    for broker in started:
        broker.stop()


@dataclass(frozen=True)
class Broker:
    """Where ingest and the fleet meet, and which MQTT version they speak."""

    port: int
    mqtt5: bool

    @property
    def version(self) -> str:
        return "5" if self.mqtt5 else "3.1.1"


@pytest.fixture
def broker(services: None, mosquitto_factory: Callable[..., Mosquitto]) -> Broker:
    """The profile's broker: Mosquitto with MQTT 5, or the embedded amqtt with 3.1.1."""
    if PROFILE == "embedded":
        return Broker(port=EMBEDDED_MQTT_PORT, mqtt5=False)
    return Broker(port=mosquitto_factory().port, mqtt5=True)


@pytest.fixture
def ingest_factory(tmp_path: Path) -> Iterator[Callable[..., IngestProcess]]:
    started: list[IngestProcess] = []

    def make(port: int, mqtt_version: str, **env: str) -> IngestProcess:
        process = IngestProcess(
            port=port,
            client_id=f"test-ingest-{secrets.token_hex(4)}",
            mqtt_version=mqtt_version,
            log_path=tmp_path / f"ingest-{len(started)}.log",
            extra_env=env,
        )
        process.start()
        started.append(process)
        return process

    yield make
    for process in started:
        process.stop()


def ingest_settings(broker: Broker, **options: object) -> Settings:
    settings = get_settings()
    return settings.model_copy(
        update={
            "mqtt": settings.mqtt.model_copy(update={"host": "127.0.0.1", "port": broker.port}),
            "ingest": settings.ingest.model_copy(
                update={"mqtt_version": broker.version, **options}
            ),
        }
    )


@pytest.fixture
def run_consumer() -> Iterator[Callable[..., IngestConsumer]]:
    """run_consumer(settings) -> an ingest consumer running in a thread of this process."""
    running: list[tuple[IngestConsumer, threading.Thread]] = []

    def start(settings: Settings) -> IngestConsumer:
        consumer = IngestConsumer(
            settings, get_sessionmaker(), client_id=f"test-ingest-{secrets.token_hex(4)}"
        )
        thread = threading.Thread(target=consumer.run, daemon=True)
        thread.start()
        running.append((consumer, thread))
        return consumer

    yield start
    for consumer, thread in running:
        consumer.stop()
        thread.join(timeout=30)


def stored_keys() -> list[tuple[str, uuid.UUID]]:
    from server.anomalies.orm import ScoredEvent

    with session_scope() as session:
        rows = session.execute(select(ScoredEvent.device_id, ScoredEvent.event_id))
        return [(str(device_id), event_id) for device_id, event_id in rows]
