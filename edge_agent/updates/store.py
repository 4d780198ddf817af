"""Model artifacts on disk: the current one, the previous one, and a pointer file.

Layout under ``<state_dir>/models``::

    <version>-<sha12>/model.tflite, manifest.json, manifest.sig
    active.json    {"current": dir, "previous": dir, "generation": n, "rejected": {...}}

Files are written under a temporary name and renamed, and the pointer is replaced
last, so a crash at any point leaves either the old or the new state. Every start
verifies the artifact again (signature, sha256, feature spec) before loading it.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from edge_agent.protocol.artifact import MANIFEST_FILE, MODEL_FILE, SIGNATURE_FILE

logger = logging.getLogger(__name__)

POINTER_FILE: Final = "active.json"
MAX_REJECTED: Final = 32
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def _write(path: Path, data: bytes) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    with temporary.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    temporary.replace(path)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass(slots=True)
class Pointer:
    current: str | None = None
    previous: str | None = None
    generation: int = -1
    rejected: dict[str, str] = field(default_factory=dict)  # rejection key -> why


class ModelStore:
    """Where verified artifacts live between restarts."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True, mode=0o700)

    @staticmethod
    def dirname(version: str, sha256: str) -> str:
        return f"{_UNSAFE.sub('_', version)[:64]}-{sha256[:12]}"

    def path(self, name: str) -> Path:
        return self.root / name

    def save(self, name: str, *, manifest_bytes: bytes, signature: str, model_bytes: bytes) -> Path:
        """Write the three artifact files exactly as signed."""
        directory = self.root / name
        directory.mkdir(exist_ok=True, mode=0o700)
        _write(directory / MODEL_FILE, model_bytes)
        _write(directory / MANIFEST_FILE, manifest_bytes)
        _write(directory / SIGNATURE_FILE, signature.encode() + b"\n")
        _fsync_dir(directory)
        return directory

    def read_pointer(self) -> Pointer:
        path = self.root / POINTER_FILE
        if not path.exists():
            return Pointer()
        try:
            data: dict[str, Any] = json.loads(path.read_text())
            return Pointer(
                current=data.get("current"),
                previous=data.get("previous"),
                generation=int(data.get("generation", -1)),
                rejected=dict(data.get("rejected", {})),
            )
        except (ValueError, TypeError) as exc:
            logger.error("%s is unreadable (%s); starting without a model pointer", path, exc)
            return Pointer()

    def write_pointer(self, pointer: Pointer) -> None:
        rejected = dict(list(pointer.rejected.items())[-MAX_REJECTED:])
        data = {
            "current": pointer.current,
            "previous": pointer.previous,
            "generation": pointer.generation,
            "rejected": rejected,
        }
        _write(self.root / POINTER_FILE, json.dumps(data, indent=2).encode())
        _fsync_dir(self.root)

    def prune(self, keep: set[str]) -> None:
        """Remove artifact folders other than ``keep`` (the current and the previous)."""
        for entry in self.root.iterdir():
            if entry.is_dir() and entry.name not in keep:
                shutil.rmtree(entry, ignore_errors=True)
                logger.info("removed model folder %s", entry.name)
