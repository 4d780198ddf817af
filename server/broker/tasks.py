"""Keeping Mosquitto's password file and ACL in step with the enrolled devices."""

from __future__ import annotations

import logging
from pathlib import Path

from server.broker import service as broker_service
from server.core.config import get_settings
from server.core.db import session_scope
from server.devices import service as devices_service
from server.worker import celery_app, idempotent_task

logger = logging.getLogger(__name__)


def sync_auth_files_now(
    *, password_file: Path | None = None, acl_file: Path | None = None
) -> broker_service.WrittenFiles:
    """Write the files (by default where the settings say) from the database, now."""
    settings = get_settings()
    if password_file is None and acl_file is None:
        password_file, acl_file = settings.mqtt.password_file, settings.mqtt.acl_file
    with session_scope() as session:
        accounts = devices_service.mqtt_accounts(session)
    return broker_service.write_auth_files(
        accounts, password_file=password_file, acl_file=acl_file, settings=settings
    )


@celery_app.task(name=broker_service.SYNC_TASK_NAME, **idempotent_task)
def sync_auth_files() -> int:
    """Rewrite the broker's files (enqueued after enrollments and revocations, and on a
    timer); returns the number of accounts, or 0 when no file is configured."""
    if not broker_service.sync_configured(get_settings()):
        return 0
    return sync_auth_files_now().accounts
