"""Passwords, bearer tokens and encryption of secrets at rest."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from functools import lru_cache
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy import LargeBinary
from sqlalchemy.types import TypeDecorator

from server.core.config import get_settings

_password_hasher = PasswordHasher()

# A token says what it is by its prefix, so a leaked one is easy to recognise and scan for.
SESSION_TOKEN_PREFIX = "eps_"
API_TOKEN_PREFIX = "ept_"
DEVICE_TOKEN_PREFIX = "epd_"
ENROLLMENT_TOKEN_PREFIX = "epe_"
TOKEN_PREFIXES = (
    SESSION_TOKEN_PREFIX,
    API_TOKEN_PREFIX,
    DEVICE_TOKEN_PREFIX,
    ENROLLMENT_TOKEN_PREFIX,
)


def hash_password(password: str) -> str:
    return _password_hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _password_hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def dummy_verify_password() -> None:
    """Spend the time of one verification, so unknown user names take as long as wrong passwords."""
    verify_password(_DUMMY_HASH, "not-the-password")


_DUMMY_HASH = _password_hasher.hash(secrets.token_urlsafe(16))


def new_token(prefix: str) -> str:
    """A new random bearer token: 256 bits after a recognisable prefix."""
    return prefix + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """Tokens carry 256 random bits, so one fast hash is enough to store them safely."""
    return hashlib.sha256(token.encode()).hexdigest()


def tokens_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


@lru_cache(maxsize=1)
def _fernet() -> MultiFernet:
    raw = get_settings().security.encryption_keys.get_secret_value()
    keys = [key.strip() for key in raw.split(",") if key.strip()]
    if not keys:
        raise ValueError("EDGEPLANE_SECURITY__ENCRYPTION_KEYS holds no key")
    return MultiFernet([Fernet(key) for key in keys])


def encrypt_secret(plaintext: str) -> bytes:
    return _fernet().encrypt(plaintext.encode())


def decrypt_secret(ciphertext: bytes) -> str:
    try:
        return _fernet().decrypt(ciphertext).decode()
    except InvalidToken as exc:
        raise ValueError(
            "a stored secret cannot be decrypted with EDGEPLANE_SECURITY__ENCRYPTION_KEYS "
            "(was the key that encrypted it removed?)"
        ) from exc


def reencrypt_secret(ciphertext: bytes) -> bytes:
    """Re-encrypt with the first (current) key, for key rotation."""
    return _fernet().rotate(ciphertext)


class EncryptedText(TypeDecorator[str]):
    """Text stored encrypted with the configured Fernet keys; plaintext only in memory."""

    impl = LargeBinary
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Any) -> bytes | None:
        return None if value is None else encrypt_secret(value)

    def process_result_value(self, value: bytes | None, dialect: Any) -> str | None:
        return None if value is None else decrypt_secret(value)
