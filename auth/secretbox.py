"""Secrets at rest: AES-256-GCM under a key kept in a file, outside the database.

A copy of the database alone (a backup, a replica, a leaked dump) gives no TOTP secret
away. Each sealed value is bound to its *context* (the user it belongs to) as associated
data, so that a row copied onto another user's does not open. The sealed text names the
key it was made with, so that a wrong or replaced key file is reported as such rather
than as tampering::

    v1.<key id: 16 hex>.<base64url(nonce 12 bytes + ciphertext + tag)>

The key file holds 32 random bytes and is created (mode 0600) when missing; every
gateway node and the CLI must read the same file.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import secrets
import tempfile
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from auth.errors import SecretKeyError

log = logging.getLogger(__name__)

KEY_SIZE = 32
NONCE_SIZE = 12
VERSION = "v1"


class SecretBox:
    """Seals and opens short secrets with one AES-256-GCM key."""

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_SIZE:
            raise ValueError(f"the key must be {KEY_SIZE} bytes")
        self._aead = AESGCM(key)
        self.key_id = hmac.new(key, b"deskgate key id", hashlib.sha256).hexdigest()[:16]

    @classmethod
    def from_file(cls, path: Path) -> SecretBox:
        """The box whose key is in ``path``, created (0600, random) if missing."""
        return cls(load_or_create_key(path))

    def seal(self, plaintext: bytes, context: str) -> str:
        nonce = secrets.token_bytes(NONCE_SIZE)
        sealed = nonce + self._aead.encrypt(nonce, plaintext, context.encode())
        return f"{VERSION}.{self.key_id}.{base64.urlsafe_b64encode(sealed).decode()}"

    def open(self, sealed: str, context: str) -> bytes:
        """The plaintext; raises :class:`SecretKeyError` for another key, a damaged value or another context."""
        version, _, rest = sealed.partition(".")
        key_id, _, body = rest.partition(".")
        if version != VERSION or not body:
            raise SecretKeyError("the stored value is not in a format this gateway reads")
        if key_id != self.key_id:
            raise SecretKeyError(f"the value was sealed with key {key_id}, but the key file holds key {self.key_id}: "
                                 "restore the original key file on every node, or reset the secret")
        try:
            raw = base64.urlsafe_b64decode(body)
            return self._aead.decrypt(raw[:NONCE_SIZE], raw[NONCE_SIZE:], context.encode())
        except (ValueError, InvalidTag):
            raise SecretKeyError("the stored value was altered, or belongs to another record; reset it") from None


def load_or_create_key(path: Path) -> bytes:
    """The key in ``path``; a new one is written there first if the file does not exist.

    The new key is written to a temporary file and linked into place, so that a process
    racing to create the same file reads either nothing or the whole key, never half of it.
    """
    try:
        return read_key(path)
    except FileNotFoundError:
        pass
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # mode 0600
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(secrets.token_bytes(KEY_SIZE))
            file.flush()
            os.fsync(file.fileno())
        try:
            os.link(temporary, path)
            log.warning("created a new secret key; give every gateway node this same file",
                        extra={"ctx": {"path": str(path)}})
        except FileExistsError:
            pass  # another process won the race: use its key
    finally:
        os.unlink(temporary)
    return read_key(path)


def read_key(path: Path) -> bytes:
    with open(path, "rb") as file:
        if os.fstat(file.fileno()).st_mode & 0o077:
            raise SecretKeyError(f"the key file {path} is accessible to other users; run: chmod 600 {path}")
        key = file.read(KEY_SIZE + 1)
    if len(key) != KEY_SIZE:
        raise SecretKeyError(f"the key file {path} holds {len(key)} bytes instead of {KEY_SIZE}; "
                             "restore it from a backup")
    return key
