"""Ed25519 signing keys for artifacts that ``edgeplane train`` writes on its own.

The registry signs the models it serves with its own keys, kept in the database; a key
file is for training outside the control plane (a workstation, CI, the demo). The
private key is PKCS#8 PEM, readable by its owner only; the public key beside it is what
agents are told to trust.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Final

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from server.training.exceptions import SigningKeyError

logger = logging.getLogger(__name__)

PRIVATE_KEY_FILE: Final = "signing-key.pem"
PUBLIC_KEY_FILE: Final = "signing-key.pub.pem"


def _write_new(path: Path, data: bytes, mode: int) -> None:
    """Create ``path`` with ``mode`` from the start: never overwrite, never widen briefly."""
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError as exc:
        raise SigningKeyError(f"{path} exists; remove it first or choose another folder") from exc
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)
    os.chmod(path, mode)  # the umask may have narrowed it further; make it exact


def generate_signing_key(directory: Path) -> tuple[Path, Path]:
    """Write a new key pair into ``directory``: (private key file, public key file)."""
    directory.mkdir(parents=True, exist_ok=True)
    private_path = directory / PRIVATE_KEY_FILE
    public_path = directory / PUBLIC_KEY_FILE
    if public_path.exists():
        raise SigningKeyError(f"{public_path} exists; remove it first or choose another folder")
    key = Ed25519PrivateKey.generate()
    _write_new(
        private_path,
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        0o600,
    )
    _write_new(
        public_path,
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        0o644,
    )
    logger.info("wrote signing key %s and public key %s", private_path, public_path)
    return private_path, public_path


def load_signing_key(path: Path) -> Ed25519PrivateKey:
    """The Ed25519 private key in a PEM file."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SigningKeyError(f"cannot read the signing key {path}: {exc.strerror}") from exc
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise SigningKeyError(f"{path} is not an unencrypted PEM private key") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError(f"{path} holds a {type(key).__name__}, not an Ed25519 key")
    if path.stat().st_mode & 0o077:
        logger.warning("signing key %s is readable by other users; chmod 600 it", path)
    return key
