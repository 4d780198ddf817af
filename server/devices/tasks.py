"""Device monitors that run on a timer."""

from __future__ import annotations

import logging

from server.core.db import session_scope
from server.devices import service as devices_service
from server.worker import celery_app, idempotent_task

logger = logging.getLogger(__name__)


@celery_app.task(name="devices.mark_offline", **idempotent_task)
def mark_offline() -> int:
    """Set devices that missed their heartbeat window to offline; returns how many changed."""
    with session_scope() as session:
        changed = devices_service.mark_offline(session)
    if changed:
        logger.info("marked %d devices offline", len(changed))
    return len(changed)
