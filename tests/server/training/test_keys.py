"""Signing keys: created owner-only, never overwritten, and only Ed25519 is accepted."""

from __future__ import annotations

import base64
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, generate_private_key
from typer.testing import CliRunner

from edge_agent.protocol.artifact import load_public_key, sign_manifest
from server.cli import app
from server.training.exceptions import SigningKeyError
from server.training.keys import (
    PRIVATE_KEY_FILE,
    PUBLIC_KEY_FILE,
    generate_signing_key,
    load_signing_key,
)


def test_keygen_writes_a_private_key_only_its_owner_can_read(tmp_path: Path) -> None:
    private_path, public_path = generate_signing_key(tmp_path / "keys")

    assert stat.S_IMODE(private_path.stat().st_mode) == 0o600
    key = load_signing_key(private_path)
    public = load_public_key(public_path.read_text())
    public.verify(base64.b64decode(sign_manifest(b"manifest", key)), b"manifest")


def test_keygen_never_overwrites(tmp_path: Path) -> None:
    generate_signing_key(tmp_path)
    before = (tmp_path / PRIVATE_KEY_FILE).read_bytes()
    with pytest.raises(SigningKeyError, match="exists"):
        generate_signing_key(tmp_path)
    assert (tmp_path / PRIVATE_KEY_FILE).read_bytes() == before


def test_a_key_that_is_not_ed25519_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "ec.pem"
    path.write_bytes(
        generate_private_key(SECP256R1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    with pytest.raises(SigningKeyError, match="not an Ed25519 key"):
        load_signing_key(path)
    path.write_text("not a key")
    with pytest.raises(SigningKeyError, match="PEM"):
        load_signing_key(path)
    with pytest.raises(SigningKeyError, match="cannot read"):
        load_signing_key(tmp_path / "missing.pem")


def test_cli_keygen(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["train", "keygen", "--out", str(tmp_path)])

    assert result.exit_code == 0, result.output
    assert (tmp_path / PRIVATE_KEY_FILE).exists()
    assert (tmp_path / PUBLIC_KEY_FILE).exists()
    again = CliRunner().invoke(app, ["train", "keygen", "--out", str(tmp_path)])
    assert again.exit_code == 2
