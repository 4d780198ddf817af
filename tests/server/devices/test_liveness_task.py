"""The periodic liveness monitor, run by a real Celery worker over the profile's broker."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta

import pytest
from celery.contrib.testing.worker import start_worker
from sqlalchemy import Engine

from server.core.config import get_settings
from server.core.db import session_scope, utcnow
from server.devices.orm import Device, DeviceStatus
from server.devices.tasks import mark_offline
from server.worker import celery_app
from tests.factories import enroll_device


@pytest.fixture
def worker(committed_db: Engine) -> Iterator[None]:
    with start_worker(celery_app, pool="solo", perform_ping_check=False, shutdown_timeout=30):
        yield


def _enrolled_device(name: str, last_seen_seconds_ago: float) -> uuid.UUID:
    with session_scope() as session:
        device = enroll_device(session, name=name).device
        device.status = DeviceStatus.ONLINE
        device.last_seen_at = utcnow() - timedelta(seconds=last_seen_seconds_ago)
        return device.id


def test_worker_marks_silent_devices_offline(worker: None) -> None:
    window = get_settings().device_offline_after_seconds
    silent = _enrolled_device("silent", last_seen_seconds_ago=window + 5)
    alive = _enrolled_device("alive", last_seen_seconds_ago=1)

    assert mark_offline.delay().get(timeout=60) == 1
    with session_scope() as session:
        assert session.get_one(Device, silent).status is DeviceStatus.OFFLINE
        assert session.get_one(Device, alive).status is DeviceStatus.ONLINE
    # Idempotent: running it again changes nothing.
    assert mark_offline.delay().get(timeout=60) == 0


def test_mark_offline_is_scheduled() -> None:
    schedule = celery_app.conf.beat_schedule
    assert any(entry["task"] == "devices.mark_offline" for entry in schedule.values())
