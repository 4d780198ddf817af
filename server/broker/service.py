"""What Mosquitto needs from the control plane: a password file and an ACL.

Devices authenticate with their EdgePlane credential (MQTT username = device id). Only a
Mosquitto-format hash of it is kept, taken at enrollment, so the files can be rewritten
at any time from the database. The ACL confines each device to its own topics; the ingest
account is the only device-data reader besides the control plane's own account.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import secrets
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.orm import Session

from edge_agent.protocol.topics import (
    DEVICE_PUBLISHES,
    INGEST_SHARE_GROUP,
    INGESTED,
    TOPIC_ROOT,
    Channel,
)
from server.core.config import Settings, get_settings
from server.core.db import after_commit

logger = logging.getLogger(__name__)

SYNC_TASK_NAME = "broker.sync_auth_files"
# Mosquitto's own default for `$7$` hashes. Device credentials carry 256 random bits, so
# key stretching adds nothing but broker CPU on every connect.
PBKDF2_ITERATIONS = 101
_SALT_BYTES = 12


@dataclass(frozen=True, slots=True)
class Account:
    username: str
    password_hash: str


def hash_password(password: str, *, iterations: int = PBKDF2_ITERATIONS) -> str:
    """A password in mosquitto_passwd's format: ``$7$<iterations>$<salt>$<PBKDF2-SHA512>``."""
    salt = secrets.token_bytes(_SALT_BYTES)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def verify_password(password_hash: str, password: str) -> bool:
    try:
        _, kind, iterations, salt, digest = password_hash.split("$")
        if kind != "7":
            return False
        expected = base64.b64decode(digest, validate=True)
        actual = hashlib.pbkdf2_hmac(
            "sha512", password.encode(), base64.b64decode(salt, validate=True), int(iterations)
        )
    except ValueError:
        return False
    return hmac.compare_digest(expected, actual)


def service_accounts(settings: Settings, existing: Mapping[str, str]) -> list[Account]:
    """The control-plane and ingest accounts from the settings.

    A hash already in the file is kept while it still matches the password, so that
    rewriting the file changes nothing the broker would have to reload.
    """
    pairs = [(settings.mqtt.username, settings.mqtt.password)]
    pairs.append((settings.mqtt.ingest_username, settings.mqtt.ingest_password))
    accounts: dict[str, Account] = {}
    for username, password in pairs:
        if not username or password is None:
            continue
        secret = password.get_secret_value()
        current = existing.get(username)
        if current is None or not verify_password(current, secret):
            current = hash_password(secret)
        accounts[username] = Account(username, current)
    return list(accounts.values())


def parse_password_file(text: str) -> dict[str, str]:
    accounts: dict[str, str] = {}
    for line in text.splitlines():
        username, sep, password_hash = line.strip().partition(":")
        if sep and username and not username.startswith("#"):
            accounts[username] = password_hash
    return accounts


def render_password_file(accounts: Iterable[Account]) -> str:
    lines = []
    seen: set[str] = set()
    for account in accounts:
        if ":" in account.username or "\n" in account.username or account.username in seen:
            logger.warning("skipping MQTT account with an unusable name %r", account.username)
            continue
        seen.add(account.username)
        lines.append(f"{account.username}:{account.password_hash}")
    return "\n".join(lines) + "\n"


def render_acl(settings: Settings) -> str:
    """Devices get their own topics by pattern (%u is the username, the device id)."""
    device = f"{TOPIC_ROOT}/%u"
    lines = [
        "# Written by EdgePlane (edgeplane broker-config); rewritten when devices enroll or",
        "# are revoked. A device's username is its id: it may publish only under its own id",
        "# and read only its own desired state and confirmations.",
    ]
    lines += [f"pattern write {device}/{channel.value}" for channel in sorted(DEVICE_PUBLISHES)]
    lines += [
        f"pattern read {device}/{Channel.DESIRED.value}",
        f"pattern read {device}/{Channel.CONFIRMATIONS.value}",
    ]
    control = settings.mqtt.username
    ingest = settings.mqtt.ingest_username
    if control:
        lines += [
            "",
            "# The control plane: desired states, confirmations, and $SYS for health checks.",
            f"user {control}",
            "topic readwrite edgeplane/#",
            "topic read $share/#",
            "topic read $SYS/#",
        ]
    if ingest and ingest != control:
        lines += [
            "",
            "# Ingest: reads every device's uploads, confirms them back.",
            f"user {ingest}",
        ]
        for channel in INGESTED:
            topic = f"{TOPIC_ROOT}/+/{channel.value}"
            lines += [f"topic read {topic}", f"topic read $share/{INGEST_SHARE_GROUP}/{topic}"]
        lines.append(f"topic write {TOPIC_ROOT}/+/{Channel.CONFIRMATIONS.value}")
    return "\n".join(lines) + "\n"


def write_atomically(path: Path, content: str) -> bool:
    """Replace ``path`` in one rename (a watcher never sees half a file); False if unchanged."""
    try:
        if path.read_text() == content:
            return False
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o640)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return True


@dataclass(frozen=True, slots=True)
class WrittenFiles:
    password_file: Path | None
    acl_file: Path | None
    accounts: int
    changed: bool


def write_auth_files(
    device_accounts: Iterable[Account],
    *,
    password_file: Path | None,
    acl_file: Path | None,
    settings: Settings | None = None,
) -> WrittenFiles:
    """Write the password file and ACL (either may be None: not written)."""
    settings = settings or get_settings()
    changed = False
    count = 0
    if password_file is not None:
        try:
            existing = parse_password_file(password_file.read_text())
        except FileNotFoundError:
            existing = {}
        accounts = [*service_accounts(settings, existing), *device_accounts]
        count = len(accounts)
        changed |= write_atomically(password_file, render_password_file(accounts))
    if acl_file is not None:
        changed |= write_atomically(acl_file, render_acl(settings))
    if changed:
        logger.info("broker auth files written (%d accounts)", count)
    return WrittenFiles(password_file, acl_file, count, changed)


def request_sync(session: Session) -> None:
    """Rewrite the broker's files once this session's transaction has committed.

    Called when a device enrolls or is revoked. The rewrite reads the database, so it must
    not run before the commit; a periodic task repairs any request lost in between.
    """
    after_commit(session, SYNC_TASK_NAME, _enqueue_sync)


def sync_configured(settings: Settings) -> bool:
    return settings.mqtt.password_file is not None or settings.mqtt.acl_file is not None


def _enqueue_sync() -> None:
    if not sync_configured(get_settings()):
        return
    from server.worker import celery_app

    celery_app.send_task(SYNC_TASK_NAME)
