"""Secrets at rest: AES-256-GCM bound to their owner, under a key file created once and shared."""

from __future__ import annotations

import os
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from auth.errors import SecretKeyError
from auth.secretbox import KEY_SIZE, SecretBox, load_or_create_key


def test_sealed_values_open_only_for_their_owner(box: SecretBox) -> None:
    sealed = box.seal(b"JBSWY3DPEHPK3PXP", "alice")
    assert sealed.startswith(f"v1.{box.key_id}.") and "JBSWY3DPEHPK3PXP" not in sealed
    assert box.open(sealed, "alice") == b"JBSWY3DPEHPK3PXP"
    assert box.seal(b"JBSWY3DPEHPK3PXP", "alice") != sealed  # a fresh nonce each time
    with pytest.raises(SecretKeyError, match="belongs to another record"):
        box.open(sealed, "mallory")  # copied onto another user's row


def test_an_altered_value_is_refused(box: SecretBox) -> None:
    version, key_id, body = box.seal(b"secret", "alice").split(".")
    flipped = body[:10] + ("A" if body[10] != "A" else "B") + body[11:]
    with pytest.raises(SecretKeyError, match="altered"):
        box.open(f"{version}.{key_id}.{flipped}", "alice")
    with pytest.raises(SecretKeyError, match="format"):
        box.open("plaintext-secret", "alice")


def test_another_key_is_named_as_such(box: SecretBox, tmp_path: Path) -> None:
    other = SecretBox.from_file(tmp_path / "other.key")
    with pytest.raises(SecretKeyError, match=f"sealed with key {box.key_id}.*holds key {other.key_id}"):
        other.open(box.seal(b"secret", "alice"), "alice")


def test_the_key_file_is_created_once_private_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "var" / "totp.key"
    key = load_or_create_key(path)
    assert len(key) == KEY_SIZE and path.read_bytes() == key
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_key(path) == key
    assert [p.name for p in path.parent.iterdir()] == ["totp.key"]  # no temporary file left


def test_processes_racing_to_create_the_key_all_get_the_same(tmp_path: Path) -> None:
    path = tmp_path / "totp.key"
    with ThreadPoolExecutor(8) as pool:
        keys = set(pool.map(lambda _: load_or_create_key(path), range(32)))
    assert len(keys) == 1


def test_a_readable_or_truncated_key_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "totp.key"
    load_or_create_key(path)
    os.chmod(path, 0o644)
    with pytest.raises(SecretKeyError, match="chmod 600"):
        load_or_create_key(path)
    path.write_bytes(b"short")
    os.chmod(path, 0o600)
    with pytest.raises(SecretKeyError, match="holds 5 bytes"):
        load_or_create_key(path)
