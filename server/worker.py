"""The Celery app and its beat schedule.

Task conventions (every task follows them): an explicit ``name``; arguments are
ids, never ORM objects; the task opens its own session, calls one service and
commits; it is safe to run twice. Tasks are acknowledged after they finish
(``acks_late``) and requeued if their worker dies, so they must be idempotent.
"""

from __future__ import annotations

from typing import Any

from celery import Celery
from sqlalchemy.exc import OperationalError

from server.core.config import get_settings

TASK_MODULES = [
    "server.devices.tasks",
    "server.broker.tasks",
    "server.rollouts.tasks",
    "server.training.tasks",
]

# Options for tasks that touch the database: retry transient failures with backoff.
idempotent_task: dict[str, Any] = {
    "acks_late": True,
    "autoretry_for": (OperationalError, ConnectionError),
    "retry_backoff": True,
    "retry_backoff_max": 300,
    "retry_jitter": True,
    "max_retries": 8,
}


def create_celery_app() -> Celery:
    settings = get_settings()
    if settings.celery_broker_url.startswith("sqla+sqlite"):
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    app = Celery(
        "edgeplane",
        broker=settings.celery_broker_url,
        backend=settings.celery_result_backend,
        include=TASK_MODULES,
    )
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        result_expires=24 * 3600,
        timezone="UTC",
        enable_utc=True,
        broker_connection_retry_on_startup=True,
        # Redis redelivers a task whose worker vanished after this long.
        broker_transport_options=({"visibility_timeout": 3600} if settings.redis.url else {}),
        beat_schedule={
            "devices-mark-offline": {
                "task": "devices.mark_offline",
                "schedule": float(settings.devices.heartbeat_interval_seconds),
                "options": {"expires": float(settings.devices.heartbeat_interval_seconds)},
            },
            "rollouts-tick": {
                "task": "rollouts.tick",
                "schedule": settings.rollouts.tick_seconds,
                "options": {"expires": settings.rollouts.tick_seconds},
            },
            "training-check-drift": {
                "task": "training.check_drift",
                "schedule": settings.training.drift_check_seconds,
                "options": {"expires": settings.training.drift_check_seconds},
            },
            **(
                {
                    "training-scheduled-retrain": {
                        "task": "training.scheduled_retrain",
                        "schedule": settings.training.schedule_hours * 3600,
                        "options": {"expires": settings.training.schedule_hours * 3600},
                    }
                }
                if settings.training.schedule_hours
                else {}
            ),
            # Repairs the broker's files should an enqueue after enrollment have been lost.
            "broker-sync-auth-files": {
                "task": "broker.sync_auth_files",
                "schedule": 300.0,
                "options": {"expires": 300.0},
            },
        },
    )
    return app


celery_app = create_celery_app()
