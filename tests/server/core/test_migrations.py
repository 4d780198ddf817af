"""Migrations build every table the models declare, on PostgreSQL and SQLite, and go back down."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, create_engine, inspect, text

from server.core import migrations
from server.core.db import load_all_models, make_engine
from tests.conftest import POSTGRES_ADMIN_URL, PROFILE, RUN_ID


# The embedded run has no PostgreSQL; the production run checks both.
@pytest.fixture(params=["sqlite", "postgresql"] if PROFILE == "production" else ["sqlite"])
def empty_engine(
    request: pytest.FixtureRequest, tmp_path: Path, services: None
) -> Iterator[Engine]:
    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'empty.sqlite'}")
        yield engine
        engine.dispose()
        return
    name = f"edgeplane_migrations_{RUN_ID}"
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    engine = make_engine(POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + "/" + name)
    yield engine
    engine.dispose()
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    admin.dispose()


def _drift(engine: Engine) -> list[object]:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, load_all_models()))


def test_upgrade_matches_models_and_downgrade_is_clean(empty_engine: Engine) -> None:
    migrations.upgrade(empty_engine)
    assert _drift(empty_engine) == []
    with empty_engine.connect() as connection:
        roles = connection.execute(text("SELECT name FROM roles ORDER BY rank")).scalars().all()
    assert roles == ["viewer", "operator", "admin"]

    migrations.downgrade(empty_engine, "base")
    assert set(inspect(empty_engine).get_table_names()) <= {"alembic_version"}

    migrations.upgrade(empty_engine)
    assert _drift(empty_engine) == []
