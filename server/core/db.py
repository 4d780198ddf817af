"""Engine, sessions and the declarative base.

The request (or the Celery task) owns the transaction: ``get_session`` commits when
the handler returns and rolls back when it raises. Services only ``flush()``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from enum import StrEnum
from functools import lru_cache
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy import Connection, DateTime, Engine, Enum, MetaData, create_engine, event
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.pool import ConnectionPoolEntry
from sqlalchemy.types import TypeDecorator

from server.core.config import get_settings

logger = logging.getLogger(__name__)

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend (SQLite keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given where a UTC datetime is required")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def str_enum(enum: type[StrEnum], name: str) -> Enum:
    """A string enum stored as VARCHAR of its values, not a native database type, so that
    adding a member needs no ALTER TYPE."""
    return Enum(
        enum,
        name=name,
        native_enum=False,
        length=16,
        values_callable=lambda members: [member.value for member in members],
    )


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime()}  # noqa: RUF012


def _configure_sqlite_connection(dbapi_connection: DBAPIConnection, _: ConnectionPoolEntry) -> None:
    # Let SQLAlchemy, not the sqlite3 module, decide when transactions begin, so that
    # SAVEPOINTs work (SQLAlchemy's documented recipe for pysqlite).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


# A connection option: begin SQLite transactions IMMEDIATE, taking the write lock at once.
# A deferred transaction that reads, then writes after another process has written,
# fails at once with "database is locked" (busy_timeout cannot help it); an immediate
# one waits its turn. Sessions that are there to write ask for it (tasks, the ingest,
# requests that change something); readers stay deferred, so they never wait.
WRITER = {"edgeplane_sqlite_immediate": True}


def _begin_sqlite(connection: Connection) -> None:
    immediate = connection.get_execution_options().get("edgeplane_sqlite_immediate", False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def make_engine(url: str, *, pool_size: int = 10, echo: bool = False) -> Engine:
    """An engine with the settings every EdgePlane process uses."""
    if url.startswith("sqlite"):
        engine = create_engine(url, echo=echo, connect_args={"check_same_thread": False})
        event.listen(engine, "connect", _configure_sqlite_connection)
        event.listen(engine, "begin", _begin_sqlite)
        return engine
    return create_engine(
        url, echo=echo, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True
    )


@lru_cache(maxsize=1)
def get_engine() -> Engine:
    settings = get_settings()
    if settings.database_url.startswith("sqlite"):
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    return make_engine(
        settings.database_url, pool_size=settings.database.pool_size, echo=settings.database.echo
    )


@lru_cache(maxsize=1)
def get_sessionmaker() -> sessionmaker[Session]:
    return sessionmaker(bind=get_engine(), expire_on_commit=False)


@contextmanager
def session_scope() -> Iterator[Session]:
    """A session whose transaction commits on success: for tasks and the CLI."""
    with get_sessionmaker()() as session, session.begin():
        session.connection(execution_options=WRITER)
        yield session


_READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def get_session(request: Request) -> Iterator[Session]:
    """Request-scoped session: commit after the handler, roll back if it raised."""
    with get_sessionmaker()() as session:
        if request.method not in _READ_METHODS:
            session.connection(execution_options=WRITER)
        try:
            yield session
            session.commit()
        except Exception:
            session.rollback()
            raise


# "function" scope: commit before the response is sent, so a failed commit becomes an error.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]


# Every domain's ORM module, so that Base.metadata is complete (Alembic, tests).
ORM_MODULES = (
    "server.auth.orm",
    "server.audit.orm",
    "server.clusters.orm",
    "server.devices.orm",
    "server.anomalies.orm",
    "server.ingest.orm",
    "server.registry.orm",
    "server.rollouts.orm",
    "server.training.orm",
)


def load_all_models() -> MetaData:
    import importlib

    for module in ORM_MODULES:
        importlib.import_module(module)
    return Base.metadata


_AFTER_COMMIT = "edgeplane.after_commit"


def after_commit(session: Session, key: str, callback: Callable[[], None]) -> None:
    """Run ``callback`` once this session's transaction has committed (never if it rolls back).

    For work that must see the committed rows, such as enqueueing a task or publishing to
    devices. One callback per ``key``: asking twice in a transaction runs it once.
    """
    session.info.setdefault(_AFTER_COMMIT, {})[key] = callback


@event.listens_for(Session, "after_commit")
def _run_after_commit(session: Session) -> None:
    for key, callback in session.info.pop(_AFTER_COMMIT, {}).items():
        try:
            callback()
        except Exception:
            logger.exception("after-commit action %s failed", key)


@event.listens_for(Session, "after_rollback")
def _forget_after_rollback(session: Session) -> None:
    session.info.pop(_AFTER_COMMIT, None)
