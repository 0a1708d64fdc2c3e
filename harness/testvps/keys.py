"""SSH key pairs: the operator's key (made once) and throw-away keys for tests."""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from harness.testvps.state import STATE_DIR


def generate_key(path: Path, comment: str = "vpskit-testvps") -> str:
    """Write a new ed25519 key (OpenSSH format, 0600) and ``<path>.pub``; return the public line."""
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    ).decode() + f" {comment}\n"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(private)
    Path(f"{path}.pub").write_text(public)
    return public


def operator_key() -> Path:
    """The operator's private key, generated on first use; call with the harness lock held."""
    path = STATE_DIR / "id_ed25519"
    if not Path(f"{path}.pub").exists():  # written last: a half-made pair is made again
        generate_key(path, comment="operator@vpskit-testvps")
    return path
