"""Mosquitto's password file and ACL as the control plane writes them."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from pydantic import SecretStr
from sqlalchemy.orm import Session

from server.broker import service as broker_service
from server.common.actor import Actor
from server.core.config import get_settings
from server.devices import service as devices_service
from server.devices.orm import Device


def test_hashes_are_mosquitto_compatible(tmp_path: Path) -> None:
    password_hash = broker_service.hash_password("s3cret")
    assert password_hash.startswith("$7$101$")
    assert broker_service.verify_password(password_hash, "s3cret")
    assert not broker_service.verify_password(password_hash, "other")
    assert not broker_service.verify_password("garbage", "s3cret")

    # And the other way round: a hash written by mosquitto_passwd itself.
    path = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-c", "-b", str(path), "someone", "pw"], check=True)
    parsed = broker_service.parse_password_file(path.read_text())
    assert broker_service.verify_password(parsed["someone"], "pw")


def test_enrollment_stores_the_mqtt_hash_and_revocation_removes_the_account(
    db_session: Session, make_device: Any
) -> None:
    device, credential = make_device()
    record = db_session.get_one(Device, device.id)
    assert record.mqtt_password_hash is not None
    assert broker_service.verify_password(record.mqtt_password_hash, credential)
    assert credential not in record.mqtt_password_hash
    assert [a.username for a in devices_service.mqtt_accounts(db_session)] == [str(device.id)]

    devices_service.revoke_device(db_session, actor=Actor.system("test"), device_id=device.id)
    assert devices_service.mqtt_accounts(db_session) == []


def test_files_are_written_atomically_and_only_when_changed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mqtt = get_settings().mqtt
    monkeypatch.setattr(mqtt, "username", "control")
    monkeypatch.setattr(mqtt, "password", SecretStr("control-pw"))
    monkeypatch.setattr(mqtt, "ingest_username", "ingest")
    monkeypatch.setattr(mqtt, "ingest_password", SecretStr("ingest-pw"))
    device_id = str(uuid.uuid4())
    accounts = [broker_service.Account(device_id, broker_service.hash_password("device-pw"))]
    passwd, acl = tmp_path / "auth" / "passwd", tmp_path / "auth" / "acl"

    first = broker_service.write_auth_files(accounts, password_file=passwd, acl_file=acl)
    assert first.changed
    assert first.accounts == 3
    entries = broker_service.parse_password_file(passwd.read_text())
    assert set(entries) == {"control", "ingest", device_id}
    assert broker_service.verify_password(entries["ingest"], "ingest-pw")
    assert passwd.stat().st_mode & 0o777 == 0o640
    # The service accounts keep their hashes while their passwords stay the same.
    assert not broker_service.write_auth_files(accounts, password_file=passwd, acl_file=acl).changed
    assert set(passwd.parent.iterdir()) == {passwd, acl}  # no temporary file left

    rules = acl.read_text().splitlines()
    assert "pattern write edgeplane/v1/devices/%u/anomalies" in rules
    assert "pattern read edgeplane/v1/devices/%u/confirmations" in rules
    assert "pattern read edgeplane/v1/devices/%u/desired" in rules
    assert not any(r.startswith("pattern read") and "anomalies" in r for r in rules)
    assert "user ingest" in rules
    assert "topic read edgeplane/v1/devices/+/anomalies" in rules
    assert "topic write edgeplane/v1/devices/+/confirmations" in rules


def test_a_committed_enrollment_enqueues_a_rewrite(
    db_session: Session, make_device: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(get_settings().mqtt, "password_file", tmp_path / "passwd")
    with mock.patch("server.worker.celery_app.send_task") as send_task:
        make_device()
        send_task.assert_not_called()  # not before the commit
        db_session.commit()
    send_task.assert_called_once_with(broker_service.SYNC_TASK_NAME)
