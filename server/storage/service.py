"""One object-store interface: a local folder (embedded) or S3 (production).

Keys are slash-separated paths such as ``models/fraud/7/model.tflite``.
"""

from __future__ import annotations

import os
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

from server.core.config import Settings, StorageBackend, get_settings
from server.storage.exceptions import ObjectNotFound


class ObjectStore(Protocol):
    def put(self, key: str, data: bytes) -> None: ...
    def get(self, key: str) -> bytes: ...
    def exists(self, key: str) -> bool: ...
    def delete(self, key: str) -> None: ...
    def check(self) -> None:
        """Raise if the store cannot be reached or written."""


def _safe_key(key: str) -> str:
    parts = key.split("/")
    if not key or key.startswith("/") or any(part in ("", ".", "..") for part in parts):
        raise ValueError(f"invalid object key {key!r}")
    return key


class LocalObjectStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        return self.root / _safe_key(key)

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        # Write then rename, so a reader never sees half an object.
        with tempfile.NamedTemporaryFile(dir=path.parent, delete=False) as tmp:
            tmp.write(data)
            tmp.flush()
            os.fsync(tmp.fileno())
        Path(tmp.name).replace(path)

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError as exc:
            raise ObjectNotFound(f"object {key} does not exist") from exc

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def check(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if not os.access(self.root, os.W_OK):
            raise PermissionError(f"object store folder {self.root} is not writable")


class S3ObjectStore:
    def __init__(self, settings: Settings) -> None:
        import boto3
        from botocore.config import Config

        storage = settings.storage
        self.bucket = storage.bucket
        self.client: Any = boto3.client(
            "s3",
            endpoint_url=storage.endpoint_url,
            region_name=storage.region,
            aws_access_key_id=storage.access_key_id,
            aws_secret_access_key=(
                storage.secret_access_key.get_secret_value() if storage.secret_access_key else None
            ),
            config=Config(retries={"max_attempts": 5, "mode": "standard"}, connect_timeout=5),
        )

    def put(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=_safe_key(key), Body=data)

    def get(self, key: str) -> bytes:
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=_safe_key(key))
        except self.client.exceptions.NoSuchKey as exc:
            raise ObjectNotFound(f"object {key} does not exist") from exc
        body: bytes = response["Body"].read()
        return body

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=_safe_key(key))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return True

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=_safe_key(key))

    def check(self) -> None:
        self.client.head_bucket(Bucket=self.bucket)


def make_object_store(settings: Settings) -> ObjectStore:
    if settings.storage_backend is StorageBackend.S3:
        return S3ObjectStore(settings)
    return LocalObjectStore(settings.storage_path)


@lru_cache(maxsize=1)
def get_object_store() -> ObjectStore:
    return make_object_store(get_settings())
