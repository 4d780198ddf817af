"""The object store of the running profile (S3 through moto in production, a folder otherwise)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from server.storage.exceptions import ObjectNotFound
from server.storage.service import LocalObjectStore, ObjectStore, get_object_store


@pytest.fixture(params=["profile", "local"])
def store(request: pytest.FixtureRequest, services: None, tmp_path: Path) -> ObjectStore:
    return get_object_store() if request.param == "profile" else LocalObjectStore(tmp_path)


def test_put_get_exists_delete(store: ObjectStore) -> None:
    store.check()
    key = f"tests/{uuid.uuid4()}/model.tflite"
    assert not store.exists(key)
    store.put(key, b"\x00tflite")
    assert store.exists(key)
    assert store.get(key) == b"\x00tflite"
    store.put(key, b"replaced")
    assert store.get(key) == b"replaced"
    store.delete(key)
    assert not store.exists(key)
    with pytest.raises(ObjectNotFound):
        store.get(key)


@pytest.mark.parametrize("key", ["", "/abs", "a/../b", "a//b", "./a"])
def test_unsafe_keys_are_refused(store: ObjectStore, key: str) -> None:
    with pytest.raises(ValueError, match="invalid object key"):
        store.put(key, b"x")
