from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from server.core.config import Settings, StorageBackend


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("EDGEPLANE_") and "TEST" not in name:
            monkeypatch.delenv(name)


def _settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def test_embedded_needs_nothing(tmp_path: Path) -> None:
    settings = _settings(data_dir=tmp_path)
    assert settings.is_embedded
    assert settings.database_url == f"sqlite:///{tmp_path}/edgeplane.sqlite"
    assert settings.celery_broker_url.startswith("sqla+sqlite:///")
    assert settings.storage_backend is StorageBackend.LOCAL
    assert settings.run_embedded_broker
    assert settings.mqtt_port == 11883


def test_production_names_each_missing_setting() -> None:
    with pytest.raises(ValidationError) as error:
        _settings(profile="production")
    message = str(error.value)
    for name in (
        "EDGEPLANE_DATABASE__URL",
        "EDGEPLANE_REDIS__URL",
        "EDGEPLANE_SECURITY__SECRET_KEY",
        "EDGEPLANE_SECURITY__ENCRYPTION_KEYS",
    ):
        assert name in message


def test_production_refuses_contradictions(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGEPLANE_PROFILE", "production")
    monkeypatch.setenv("EDGEPLANE_DATABASE__URL", "sqlite:///x.db")
    monkeypatch.setenv("EDGEPLANE_STORAGE__BACKEND", "local")
    with pytest.raises(ValidationError) as error:
        _settings()
    assert "SQLite" in str(error.value)
    assert "EDGEPLANE_STORAGE__BACKEND=local" in str(error.value)


def test_environment_names_follow_the_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGEPLANE_DEVICES__HEARTBEAT_INTERVAL_SECONDS", "7")
    monkeypatch.setenv("EDGEPLANE_LOG__JSON", "true")
    settings = _settings()
    assert settings.devices.heartbeat_interval_seconds == 7
    assert settings.json_logs


def test_bad_values_are_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGEPLANE_MQTT__PORT", "99999")
    with pytest.raises(ValidationError) as error:
        _settings()
    assert "mqtt.port" in str(error.value)
