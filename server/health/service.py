"""Readiness: can this process reach everything it depends on?"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import text

from server.core.config import get_settings
from server.core.db import get_engine
from server.storage.service import get_object_store
from server.worker import celery_app

CHECK_TIMEOUT_SECONDS = 3.0


@dataclass(frozen=True, slots=True)
class CheckResult:
    name: str
    ok: bool
    detail: str
    duration_ms: float


def check_database() -> str:
    with get_engine().connect() as connection:
        connection.execute(text("SELECT 1"))
    return get_engine().dialect.name


def check_broker() -> str:
    with celery_app.connection_for_write() as connection:
        connection.ensure_connection(max_retries=1, timeout=int(CHECK_TIMEOUT_SECONDS))
        return str(connection.transport_cls)


def check_mqtt() -> str:
    """A TCP connection to the broker; agents and ingest authenticate on their own."""
    settings = get_settings()
    address = (settings.mqtt.host, settings.mqtt_port)
    with socket.create_connection(address, timeout=CHECK_TIMEOUT_SECONDS):
        return f"{address[0]}:{address[1]}"


def check_object_store() -> str:
    get_object_store().check()
    return get_settings().storage_backend.value


CHECKS: dict[str, Callable[[], str]] = {
    "database": check_database,
    "broker": check_broker,
    "mqtt": check_mqtt,
    "object_store": check_object_store,
}


def run_checks() -> list[CheckResult]:
    results = []
    for name, check in CHECKS.items():
        started = time.monotonic()
        try:
            detail, ok = check(), True
        except Exception as exc:
            detail, ok = f"{type(exc).__name__}: {exc}", False
        results.append(CheckResult(name, ok, detail, round((time.monotonic() - started) * 1000, 1)))
    return results
