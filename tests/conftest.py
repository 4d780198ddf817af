"""Test set-up shared by the whole suite.

Two profiles, chosen with ``EDGEPLANE_TEST_PROFILE``:

* ``production`` (default): a fresh PostgreSQL database per run, the machine's
  Redis as Celery broker and rate-limit store, its Mosquitto, and S3 from a local
  moto server. A service that is not running fails the run; nothing is skipped.
* ``embedded``: SQLite, Celery over SQLite, an in-memory rate limiter, a local
  object-store folder and the embedded MQTT broker.

Settings are read from the environment once per process, so this module sets the
environment before anything imports ``server``.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from tests.processes import free_port, wait_for_port

PROFILE = os.environ.get("EDGEPLANE_TEST_PROFILE", "production")
if PROFILE not in ("production", "embedded"):
    raise pytest.UsageError(f"EDGEPLANE_TEST_PROFILE must be production or embedded, not {PROFILE}")

POSTGRES_ADMIN_URL = os.environ.get(
    "EDGEPLANE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("EDGEPLANE_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
MQTT_HOST, MQTT_PORT = "127.0.0.1", int(os.environ.get("EDGEPLANE_TEST_MQTT_PORT", "1883"))

RUN_ID = f"{os.getpid()}_{secrets.token_hex(4)}"
TEST_DB_NAME = f"edgeplane_test_{RUN_ID}"
DATA_DIR = Path(tempfile.mkdtemp(prefix="edgeplane-test-"))


S3_PORT = free_port()
EMBEDDED_MQTT_PORT = free_port()


def _configure_environment() -> None:
    for key in [k for k in os.environ if k.startswith("EDGEPLANE_") and "TEST" not in k]:
        del os.environ[key]
    env = {
        "EDGEPLANE_PROFILE": PROFILE,
        "EDGEPLANE_DATA_DIR": str(DATA_DIR),
        "EDGEPLANE_SECURITY__SECRET_KEY": secrets.token_urlsafe(48),
        "EDGEPLANE_SECURITY__ENCRYPTION_KEYS": Fernet.generate_key().decode(),
        "EDGEPLANE_SECURITY__LOGIN_ATTEMPTS_PER_MINUTE": "5",
    }
    if PROFILE == "production":
        env |= {
            "EDGEPLANE_DATABASE__URL": POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + "/" + TEST_DB_NAME,
            "EDGEPLANE_REDIS__URL": REDIS_URL,
            "EDGEPLANE_REDIS__KEY_PREFIX": f"edgeplane-test-{RUN_ID}",
            "EDGEPLANE_MQTT__HOST": MQTT_HOST,
            "EDGEPLANE_MQTT__PORT": str(MQTT_PORT),
            "EDGEPLANE_STORAGE__BACKEND": "s3",
            "EDGEPLANE_STORAGE__ENDPOINT_URL": f"http://127.0.0.1:{S3_PORT}",
            "EDGEPLANE_STORAGE__ACCESS_KEY_ID": "testing",
            "EDGEPLANE_STORAGE__SECRET_ACCESS_KEY": "testing",
            "EDGEPLANE_STORAGE__BUCKET": "edgeplane-test",
        }
    else:
        env |= {"EDGEPLANE_MQTT__PORT": str(EMBEDDED_MQTT_PORT)}
    os.environ.update(env)


_configure_environment()

# Only now may server modules be imported.
from fastapi.testclient import TestClient  # noqa: E402
from sqlalchemy import Engine, create_engine, text  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from server.core import migrations  # noqa: E402
from server.core.db import get_engine, get_session  # noqa: E402


@pytest.fixture(scope="session")
def services() -> Iterator[None]:
    """Check (and, for S3 and the embedded broker, start) what the profile needs."""
    started: list[subprocess.Popen[bytes]] = []
    moto = None
    if PROFILE == "production":
        import redis
        from moto.server import ThreadedMotoServer

        redis.Redis.from_url(REDIS_URL).ping()
        wait_for_port(MQTT_PORT, timeout=2, what="the machine's Mosquitto")
        moto = ThreadedMotoServer(ip_address="127.0.0.1", port=S3_PORT, verbose=False)
        moto.start()
        import boto3

        boto3.client(
            "s3",
            endpoint_url=f"http://127.0.0.1:{S3_PORT}",
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        ).create_bucket(Bucket="edgeplane-test")
    else:
        broker = subprocess.Popen([sys.executable, "-m", "server.cli", "mqtt-broker"])
        started.append(broker)
        wait_for_port(EMBEDDED_MQTT_PORT, what="the embedded MQTT broker")
    yield
    for process in started:
        process.terminate()
        process.wait(timeout=10)
    if moto is not None:
        moto.stop()


@pytest.fixture(scope="session")
def engine(services: None) -> Iterator[Engine]:
    """A fresh database for this run, migrated to head."""
    admin: Engine | None = None
    if PROFILE == "production":
        admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{TEST_DB_NAME}"'))
    engine = get_engine()
    migrations.upgrade(engine)
    yield engine
    engine.dispose()
    if admin is not None:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{TEST_DB_NAME}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def db_session(engine: Engine) -> Iterator[Session]:
    """A session inside a transaction that is rolled back after the test.

    Commits made through it (by the app's request scope) only release savepoints.
    """
    connection = engine.connect()
    transaction = connection.begin()
    session = Session(
        bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False
    )
    yield session
    session.close()
    transaction.rollback()
    connection.close()


@pytest.fixture
def committed_db(engine: Engine) -> Iterator[Engine]:
    """For tests whose data must be visible to other connections (workers, processes).

    Every table is emptied afterwards, except the roles seeded by migration.
    """
    yield engine
    from server.core.db import Base

    with engine.begin() as connection:
        for table in reversed(Base.metadata.sorted_tables):
            if table.name != "roles":
                connection.execute(table.delete())


@pytest.fixture
def client(db_session: Session) -> Iterator[TestClient]:
    """An HTTP client against the real app, sharing the test's rolled-back transaction."""
    from server.app import create_app

    app = create_app()

    def session_override() -> Iterator[Session]:
        # Keep what the test built before the request, whatever the request does.
        db_session.commit()
        try:
            yield db_session
            db_session.commit()
        except Exception:
            db_session.rollback()
            raise

    app.dependency_overrides[get_session] = session_override
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture(autouse=True)
def _reset_rate_limits() -> None:
    """Sign-in limits are per address, and every test client has the same one."""
    from server.core.ratelimit import get_limiter

    get_limiter().storage.reset()


# Factories: build data through the services, as the app would.

PASSWORD = "correct horse battery staple"


@pytest.fixture
def make_user(db_session: Session):  # type: ignore[no-untyped-def]
    from server.auth import service as auth_service
    from server.auth.orm import User
    from server.auth.schemas import UserCreate
    from server.common.actor import Actor, Role

    def make(role: str = "viewer", username: str | None = None, password: str = PASSWORD) -> User:
        data = UserCreate(
            username=username or f"{role}-{secrets.token_hex(4)}",
            password=password,
            role=Role(role),
        )
        return auth_service.create_user(db_session, actor=Actor.system("test"), data=data)

    return make


@pytest.fixture
def headers_for(db_session: Session, make_user):  # type: ignore[no-untyped-def]
    """headers_for("operator") -> Authorization headers of a signed-in user with that role."""
    from server.auth import service as auth_service

    def headers(role: str) -> dict[str, str]:
        user = make_user(role)
        issued = auth_service.sign_in(db_session, user=user, ip="127.0.0.1", request_id=None)
        return {"Authorization": f"Bearer {issued.token}"}

    return headers


@pytest.fixture
def make_device(db_session: Session):  # type: ignore[no-untyped-def]
    """make_device(**labels) -> (device, credential), enrolled with a one-time token."""
    from tests.factories import enroll_device

    def make(name: str | None = None, **labels: str):  # type: ignore[no-untyped-def]
        enrollment = enroll_device(db_session, name=name, labels=labels)
        return enrollment.device, enrollment.credential

    return make
