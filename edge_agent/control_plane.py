"""The agent's REST side of the control plane: enrollment, heartbeat, desired state, downloads.

After enrollment every call carries the device's own credential, so the device can
act only as itself. The credential is sent to the control plane's origin alone: an
artifact URL on another host (a presigned object-store URL) is fetched without it.
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any, Final
from urllib.parse import urljoin, urlsplit

import httpx
from pydantic import AwareDatetime, BaseModel, ConfigDict, SecretStr, ValidationError

from edge_agent.protocol.messages import DesiredState

logger = logging.getLogger(__name__)

CREDENTIALS_FILE: Final = "credentials.json"
ENROLL_PATH: Final = "/api/v1/agent/enroll"
HEARTBEAT_PATH: Final = "/api/v1/agent/heartbeat"
SELF_PATH: Final = "/api/v1/agent/self"
DESIRED_PATH: Final = "/api/v1/agent/desired"
_TIMEOUT = httpx.Timeout(10.0, connect=5.0)


def agent_version() -> str:
    try:
        return metadata.version("edgeplane")
    except metadata.PackageNotFoundError:
        return "0.0.0"


class ControlPlaneError(RuntimeError):
    """The control plane answered with an error, or could not be reached."""


class EnrollmentError(ControlPlaneError):
    """The control plane refused the enrollment (spent, expired or unknown token)."""


class Credentials(BaseModel):
    """What enrollment returns, kept in ``<state_dir>/credentials.json`` (mode 0600)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    device_id: str
    credential: SecretStr
    control_plane_url: str
    mqtt_host: str
    mqtt_port: int
    mqtt_tls: bool
    mqtt_username: str
    heartbeat_interval_seconds: int
    enrolled_at: AwareDatetime

    def save(self, state_dir: Path) -> Path:
        """Write atomically, readable by the agent's user alone."""
        state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = state_dir / CREDENTIALS_FILE
        temporary = state_dir / f".{CREDENTIALS_FILE}.{os.getpid()}.tmp"
        data = self.model_dump(mode="json")
        data["credential"] = self.credential.get_secret_value()
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.fchmod(fd, 0o600)
            os.write(fd, json.dumps(data, indent=2).encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        temporary.replace(path)
        return path

    @classmethod
    def load(cls, state_dir: Path) -> Credentials | None:
        path = state_dir / CREDENTIALS_FILE
        if not path.exists():
            return None
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            logger.warning("%s is readable by others (mode %o); tightening to 0600", path, mode)
            path.chmod(0o600)
        return cls.model_validate_json(path.read_bytes())


def _raise_for(response: httpx.Response, what: str) -> None:
    if response.is_success:
        return
    detail = ""
    try:
        body = response.json()
        if isinstance(body, dict):
            detail = str(body.get("detail", ""))[:300]
    except ValueError:
        pass
    raise ControlPlaneError(f"{what}: HTTP {response.status_code} {detail}".strip())


def enroll(
    base_url: str,
    token: str,
    *,
    name: str,
    client: httpx.Client | None = None,
) -> Credentials:
    """Spend a one-time enrollment token on this device's own credential."""
    owned = client is None
    http = client or httpx.Client(timeout=_TIMEOUT)
    try:
        response = http.post(
            urljoin(base_url + "/", ENROLL_PATH.lstrip("/")),
            json={"name": name, "agent_version": agent_version()},
            headers={"Authorization": f"Bearer {token}"},
        )
    except httpx.HTTPError as exc:
        raise ControlPlaneError(f"cannot reach the control plane: {exc}") from exc
    finally:
        if owned:
            http.close()
    if response.status_code in (400, 401, 403, 404, 409, 410):
        try:
            _raise_for(response, "enrollment refused")
        except ControlPlaneError as exc:
            raise EnrollmentError(str(exc)) from None
    _raise_for(response, "enrollment failed")
    body = response.json()
    mqtt = body["mqtt"]
    credentials = Credentials(
        device_id=str(uuid.UUID(body["device_id"])),
        credential=SecretStr(body["credential"]),
        control_plane_url=base_url.rstrip("/"),
        mqtt_host=mqtt["host"],
        mqtt_port=int(mqtt["port"]),
        mqtt_tls=bool(mqtt["tls"]),
        mqtt_username=mqtt["username"],
        heartbeat_interval_seconds=int(body["heartbeat_interval_seconds"]),
        enrolled_at=datetime.now(UTC),
    )
    logger.info("enrolled as device %s", credentials.device_id)
    return credentials


class ControlPlaneClient:
    """Calls made as the enrolled device."""

    def __init__(self, credentials: Credentials, *, client: httpx.Client | None = None) -> None:
        self._credentials = credentials
        self._base = credentials.control_plane_url
        self._origin = urlsplit(self._base)[:2]
        self._http = client or httpx.Client(timeout=_TIMEOUT, follow_redirects=False)
        self._owned = client is None

    def close(self) -> None:
        if self._owned:
            self._http.close()

    def url(self, path_or_url: str) -> str:
        return urljoin(
            self._base + "/", path_or_url.lstrip("/") if "://" not in path_or_url else path_or_url
        )

    def _headers(self, url: str) -> dict[str, str]:
        if urlsplit(url)[:2] != self._origin:
            return {}
        return {"Authorization": f"Bearer {self._credentials.credential.get_secret_value()}"}

    def _get(self, url: str, **kwargs: Any) -> httpx.Response:
        try:
            return self._http.get(url, headers=self._headers(url), **kwargs)
        except httpx.HTTPError as exc:
            raise ControlPlaneError(f"cannot reach {urlsplit(url).netloc}: {exc}") from exc

    def whoami(self) -> dict[str, Any]:
        url = self.url(SELF_PATH)
        response = self._get(url)
        _raise_for(response, "GET /agent/self")
        body: dict[str, Any] = response.json()
        return body

    def heartbeat(self, *, model_version: str | None, health: dict[str, Any]) -> None:
        url = self.url(HEARTBEAT_PATH)
        try:
            response = self._http.post(
                url,
                json={
                    "agent_version": agent_version(),
                    "model_version": model_version,
                    "health": health,
                },
                headers=self._headers(url),
            )
        except httpx.HTTPError as exc:
            raise ControlPlaneError(f"heartbeat: {exc}") from exc
        _raise_for(response, "heartbeat")

    def desired(self) -> DesiredState | None:
        """The desired state over REST; None while the control plane has none for us."""
        response = self._get(self.url(DESIRED_PATH))
        if response.status_code in (204, 404):
            return None
        _raise_for(response, "GET /agent/desired")
        try:
            return DesiredState.model_validate_json(response.content)
        except ValidationError as exc:
            raise ControlPlaneError(f"the desired state is malformed: {exc}") from exc

    def download(self, url: str, *, max_bytes: int) -> bytes:
        """Fetch a file, refusing anything larger than ``max_bytes``."""
        absolute = self.url(url)
        try:
            with self._http.stream("GET", absolute, headers=self._headers(absolute)) as response:
                if not response.is_success:
                    response.read()
                    _raise_for(response, f"download {urlsplit(absolute).path}")
                chunks: list[bytes] = []
                size = 0
                for chunk in response.iter_bytes():
                    size += len(chunk)
                    if size > max_bytes:
                        raise ControlPlaneError(f"download is larger than {max_bytes} bytes")
                    chunks.append(chunk)
        except httpx.HTTPError as exc:
            raise ControlPlaneError(f"download failed: {exc}") from exc
        return b"".join(chunks)
