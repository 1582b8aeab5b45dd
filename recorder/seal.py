"""Sealing finished journals: SHA-256 of the file, authenticated with the gateway's recording key.

The seal is a sidecar ``<id>.dgj.seal`` holding ``{"session_id", "size", "sha256", "hmac"}``
with ``hmac = HMAC-SHA256(key, f"{session_id}:{size}:{sha256}")``. Whoever can change a
journal but not read the key cannot make a matching seal.

For an encrypted journal the seal covers the file as stored — the ciphertext — so the
seal itself holds nothing personal, and a copy can be checked against it byte for byte.
Verifying also reads every record, which checks each batch's GCM tag: that needs the
journal's recording key (a missing one is an IntegrityError naming the key file).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from dataclasses import asdict, dataclass
from pathlib import Path

from recorder.errors import IntegrityError, JournalCorrupt, RecordingKeyError, RecordingUnavailable
from recorder.journal import (
    JOURNAL_SUFFIX,
    JournalReader,
    fsync_directory,
    is_session_id,
)
from recorder.keyring import RecordingKeyring
from recorder.records import journal_session_id

KEY_SIZE = 32
_CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class Seal:
    session_id: str
    size: int
    sha256: str
    hmac: str


def seal_path(journal: Path) -> Path:
    """The seal sidecar of a journal: ``<id>.dgj.seal`` next to it."""
    return journal.with_name(journal.name + ".seal")


def _mac(key: bytes, session_id: str, size: int, sha256: str) -> str:
    return hmac.new(key, f"{session_id}:{size}:{sha256}".encode(), hashlib.sha256).hexdigest()


def _digest(path: Path) -> tuple[int, str]:
    """Size and SHA-256 of the bytes read (one pass, so both describe the same content)."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb", buffering=0) as file:
        while chunk := file.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def _session_id(reader: JournalReader) -> str:
    try:
        return journal_session_id(reader.header)
    except JournalCorrupt as exc:
        raise JournalCorrupt(f"{reader.path}: {exc}") from None


def seal_journal(path: Path, key: bytes, keyring: RecordingKeyring | None = None, *,
                 written: tuple[int, str] | None = None) -> Seal:
    """Write the seal of a finished journal (atomically, durably) and return it (``keyring``: see JournalReader).

    ``written``: the size and SHA-256 its writer computed as it wrote (``JournalFile.content_digest``);
    used when the file still has that size, else the file is read again.
    """
    session_id = _session_id(JournalReader(path, keyring=keyring))
    if written is not None and os.stat(path).st_size == written[0]:
        size, sha256 = written
    else:
        size, sha256 = _digest(path)
    seal = Seal(session_id, size, sha256, _mac(key, session_id, size, sha256))
    target = seal_path(path)
    temporary = target.with_name(target.name + ".tmp")
    fd = os.open(temporary, os.O_CREAT | os.O_TRUNC | os.O_WRONLY | os.O_CLOEXEC, 0o600)
    try:
        with os.fdopen(fd, "wb", closefd=False) as file:
            file.write(json.dumps(asdict(seal)).encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temporary, target)
    fsync_directory(target.parent)
    return seal


def read_seal(path: Path) -> Seal:
    """The seal of a journal; IntegrityError if it is missing or unreadable."""
    try:
        raw = seal_path(path).read_bytes()
    except FileNotFoundError:
        raise IntegrityError(
            f"{path.name} has no seal: the gateway did not close the recording, or the seal was removed"
        ) from None
    try:
        fields = json.loads(raw)
        seal = Seal(**fields)
    except (ValueError, TypeError, RecursionError):
        raise IntegrityError(f"the seal of {path.name} is unreadable") from None
    if not (
        isinstance(seal.session_id, str)
        and type(seal.size) is int
        and isinstance(seal.sha256, str)
        and isinstance(seal.hmac, str)
    ):
        raise IntegrityError(f"the seal of {path.name} is unreadable: a field has the wrong type")
    return seal


def verify_journal(path: Path, key: bytes, keyring: RecordingKeyring | None = None) -> None:
    """Check a journal against its seal; IntegrityError says why it fails (None: intact)."""
    seal = read_seal(path)
    if not hmac.compare_digest(_mac(key, seal.session_id, seal.size, seal.sha256), seal.hmac):
        raise IntegrityError(
            f"the seal of {path.name} has a wrong HMAC: the seal was altered, or made with another recording key"
        )
    try:
        size, sha256 = _digest(path)
    except FileNotFoundError:
        raise IntegrityError(f"{path.name} is missing; only its seal is there") from None
    if size != seal.size:
        raise IntegrityError(
            f"{path.name} is {size} bytes but was sealed at {seal.size} bytes: it was truncated (torn) or appended to"
        )
    if not hmac.compare_digest(sha256, seal.sha256):
        raise IntegrityError(f"the SHA-256 of {path.name} differs from its seal: its content was changed")
    try:
        reader = JournalReader(path, keyring=keyring)
        header_id = _session_id(reader)
    except JournalCorrupt as exc:
        raise IntegrityError(f"{path.name} is sealed but unreadable: {exc}") from exc
    except RecordingKeyError as exc:
        raise IntegrityError(f"{path.name} matches its seal, but its records cannot be checked: {exc}") from exc
    name_id = path.name.removesuffix(JOURNAL_SUFFIX)
    if header_id != seal.session_id or (is_session_id(name_id) and name_id != header_id):
        raise IntegrityError(f"{path.name} and its seal belong to different sessions: a file was renamed")
    for _ in reader:
        pass
    if reader.torn_at is not None:
        raise IntegrityError(f"{path.name} is torn at byte {reader.torn_at}, though sealed")
    if reader.end is None:
        raise IntegrityError(f"{path.name} is sealed without an END record")


def load_or_create_key(path: Path) -> bytes:
    """The recording key (32 bytes) from ``path``, created (0600, random) if missing."""
    try:
        return read_key(path)
    except FileNotFoundError:
        pass
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = secrets.token_bytes(KEY_SIZE)
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_CLOEXEC, 0o600)
    except FileExistsError:  # another process created it first
        return read_key(path)
    try:
        if os.write(fd, key) != KEY_SIZE:
            raise RecordingUnavailable(f"could not write the recording key {path}")
        os.fsync(fd)
    finally:
        os.close(fd)
    fsync_directory(path.parent)
    return key


def read_key(path: Path) -> bytes:
    with open(path, "rb") as file:
        if os.fstat(file.fileno()).st_mode & 0o077:
            raise RecordingUnavailable(
                f"the recording key {path} is accessible to other users; run: chmod 600 {path}"
            )
        key = file.read(KEY_SIZE + 1)
    if len(key) != KEY_SIZE:
        raise RecordingUnavailable(
            f"the recording key {path} holds {len(key)} bytes instead of {KEY_SIZE}: restore it from a backup "
            "(a new key cannot verify the seals made with the old one)"
        )
    return key
