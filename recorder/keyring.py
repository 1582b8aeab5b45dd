"""Recording keys: the key-encryption keys that wrap each recording's random data key.

``storage.recording_keys`` is a directory of key files, ``<key id>.key``, 32 random bytes
each, mode 0600. The key whose id sorts last is *current*: new recordings wrap their data
key with it. Older keys stay to open older recordings, whose envelope names the key id and
its fingerprint. Rotation is adding a file whose name sorts later (:func:`new_key` names it ``k`` and
the UTC time, after the first key ``k0``); removing a key makes the recordings wrapped by it
unreadable, which the readers say in so many words. On first start, an empty or missing
directory gets a new key (with a warning to back it up and give every node the same files).

Every process that reads recordings (the gateway, its render workers, ``deskgate worker``,
the CLI) loads the keyring once at start-up and :func:`install`\\s it: the journal and
export readers look keys up there by fingerprint, so code that only reads a recording
(render, index, typed text) needs no key argument. Installing accumulates keys; an
explicit keyring passed to a reader takes precedence.

Short texts tied to a recording (OCR text, typed-text caches) are sealed with
:func:`encrypt_text` / :func:`decrypt_text`: AES-256-GCM under the current key, bound to
the recording id, as ``dgt1.<fingerprint>.<base64url(nonce + ciphertext)>``.

Crypto and files only; no event loop.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import re
import secrets
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from recorder.errors import RecordingKeyError

log = logging.getLogger(__name__)

KEY_SIZE = 32
NONCE_SIZE = 12
KEY_SUFFIX = ".key"
#: The key made on first start; keys added later are named ``k<UTC time>`` and sort after it.
FIRST_KEY_ID = "k0"
KEY_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$", re.ASCII)
_TEXT_VERSION = "dgt1"
_FINGERPRINT_RE = re.compile(r"[0-9a-f]{16}")


def fingerprint(key: bytes) -> str:
    """A key's public name in envelopes: 16 hex digits of an HMAC, which reveals nothing of the key."""
    return hmac.new(key, b"deskgate recording key id", hashlib.sha256).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class RecordingKey:
    key_id: str  # the file's stem: what people restore
    secret: bytes = field(repr=False)

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.secret)


@dataclass(frozen=True, slots=True)
class WrappedKey:
    """A recording's data key as its envelope holds it."""

    key_id: str
    key_fingerprint: str
    wrapped: bytes  # nonce + AES-GCM(recording key, data key, aad=recording id)


@dataclass(frozen=True, slots=True)
class RecordingKeyring:
    """The recording keys of a process; ``current`` wraps new recordings' data keys (None: encryption off)."""

    keys: tuple[RecordingKey, ...]
    current: RecordingKey | None
    directory: Path | None = None

    @classmethod
    def load(cls, directory: Path, *, encrypt: bool = True, create: bool = True) -> RecordingKeyring:
        """The keys in ``directory``; with ``create``, a first key is made when there is none.

        RecordingKeyError names a key file that is unusable (readable by others, wrong size).
        """
        keys = _read_directory(directory)
        if not keys and create:
            _create_key(directory, FIRST_KEY_ID)  # one name: nodes starting together agree on one key
            log.warning("created a new recording encryption key; back it up and give every gateway node the same "
                        "directory: recordings cannot be read without it", extra={"ctx": {"directory": str(directory)}})
            keys = _read_directory(directory)
        current = keys[-1] if keys and encrypt else None
        return cls(tuple(keys), current, directory)

    def find(self, key_id: str, key_fingerprint: str) -> RecordingKey:
        """The key with this fingerprint; RecordingKeyError saying which key file to restore."""
        for key in (*self.keys, *_installed.values()):
            if hmac.compare_digest(key.fingerprint, key_fingerprint):
                return key
        where = f" ({self.directory})" if self.directory is not None else ""
        raise RecordingKeyError(
            f"the recording is encrypted with the recording key {key_id!r} (fingerprint {key_fingerprint}), which "
            f"is not among the recording keys{where}: restore the file {key_id}{KEY_SUFFIX} from a backup"
        )

    def wrap(self, data_key: bytes, recording_id: str) -> WrappedKey:
        """``data_key`` wrapped with the current key for ``recording_id``."""
        if self.current is None:
            raise RecordingKeyError("recording encryption is off: there is no current recording key")
        nonce = secrets.token_bytes(NONCE_SIZE)
        sealed = AESGCM(self.current.secret).encrypt(nonce, data_key, _wrap_aad(recording_id, self.current.key_id))
        return WrappedKey(self.current.key_id, self.current.fingerprint, nonce + sealed)

    def unwrap(self, wrapped: WrappedKey, recording_id: str) -> bytes:
        """The data key; RecordingKeyError if the key is missing, or the envelope was altered or moved."""
        key = self.find(wrapped.key_id, wrapped.key_fingerprint)
        try:
            data_key = AESGCM(key.secret).decrypt(wrapped.wrapped[:NONCE_SIZE], wrapped.wrapped[NONCE_SIZE:],
                                                  _wrap_aad(recording_id, wrapped.key_id))
        except (InvalidTag, ValueError):
            raise RecordingKeyError(
                f"the data key of recording {recording_id} does not open with the recording key {key.key_id!r}: "
                "the file was altered, or belongs to another recording"
            ) from None
        if len(data_key) != KEY_SIZE:
            raise RecordingKeyError(f"the data key of recording {recording_id} has a wrong size")
        return data_key


def _wrap_aad(recording_id: str, key_id: str) -> bytes:
    """What a wrapped data key is bound to: its recording, and the key id its envelope names."""
    return f"deskgate data key:{recording_id}:{key_id}".encode()


_installed: dict[str, RecordingKey] = {}
_current: list[RecordingKeyring] = []


def install(keyring: RecordingKeyring) -> None:
    """Make ``keyring``'s keys known to every reader in this process (at start-up; keys accumulate)."""
    for key in keyring.keys:
        _installed[key.fingerprint] = key
    _current[:] = [keyring]


def installed() -> RecordingKeyring:
    """The keyring installed last, seeing every key installed so far (none installed: no keys)."""
    return _current[0] if _current else RecordingKeyring((), None)


def encrypt_text(keyring: RecordingKeyring, recording_id: str, text: str) -> str:
    """``text`` sealed for storage beside ``recording_id`` (e.g. OCR text in the database).

    With encryption off (no current key) the text is returned unchanged.
    """
    if keyring.current is None:
        return text
    nonce = secrets.token_bytes(NONCE_SIZE)
    sealed = nonce + AESGCM(keyring.current.secret).encrypt(nonce, text.encode(), _text_aad(recording_id))
    return f"{_TEXT_VERSION}.{keyring.current.fingerprint}.{base64.urlsafe_b64encode(sealed).decode()}"


def decrypt_text(keyring: RecordingKeyring, recording_id: str, stored: str) -> str:
    """The text :func:`encrypt_text` sealed (a text stored unsealed comes back as it is).

    RecordingKeyError when its key is missing, or it was altered or moved to another recording.
    """
    return decrypt_texts(keyring, recording_id, [stored])[0]


def decrypt_texts(keyring: RecordingKeyring, recording_id: str, stored: Iterable[str]) -> list[str]:
    """:func:`decrypt_text` of each of ``stored`` (a recording's lines), each key set up once."""
    ciphers: dict[str, AESGCM] = {}
    aad = _text_aad(recording_id)
    opened = []
    for text in stored:
        version, _, rest = text.partition(".")
        key_fingerprint, _, body = rest.partition(".")
        if version != _TEXT_VERSION or not _FINGERPRINT_RE.fullmatch(key_fingerprint) or not body:
            opened.append(text)
            continue
        cipher = ciphers.get(key_fingerprint)
        if cipher is None:
            cipher = ciphers[key_fingerprint] = AESGCM(keyring.find(key_fingerprint, key_fingerprint).secret)
        try:
            raw = base64.urlsafe_b64decode(body)
            opened.append(cipher.decrypt(raw[:NONCE_SIZE], raw[NONCE_SIZE:], aad).decode())
        except (ValueError, InvalidTag):
            raise RecordingKeyError(f"a text of recording {recording_id} was altered, or belongs to another "
                                    "recording") from None
    return opened


def _text_aad(recording_id: str) -> bytes:
    return f"deskgate text:{recording_id}".encode()


def new_key(directory: Path, key_id: str | None = None) -> RecordingKey:
    """Add a key to ``directory`` (named by the UTC time unless ``key_id`` is given): the next current key."""
    key_id = key_id or datetime.now(UTC).strftime("k%Y%m%dT%H%M%SZ")
    if not KEY_ID_RE.fullmatch(key_id):
        raise RecordingKeyError(f"{key_id!r} is not a key id: use letters, digits, '.', '_' and '-'")
    if (directory / f"{key_id}{KEY_SUFFIX}").exists():
        raise RecordingKeyError(f"the recording key {key_id!r} exists already in {directory}")
    _create_key(directory, key_id)
    return _read_key(directory / f"{key_id}{KEY_SUFFIX}")


def _create_key(directory: Path, key_id: str) -> None:
    """Write a random key (0600) as ``<key_id>.key``, linked into place whole (a racing process keeps its own)."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=directory, prefix=".new-key.")  # mode 0600
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(secrets.token_bytes(KEY_SIZE))
            file.flush()
            os.fsync(file.fileno())
        try:
            os.link(temporary, directory / f"{key_id}{KEY_SUFFIX}")
        except FileExistsError:
            pass
    finally:
        os.unlink(temporary)
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _read_directory(directory: Path) -> list[RecordingKey]:
    try:
        names = sorted(path for path in directory.iterdir()
                       if path.suffix == KEY_SUFFIX and KEY_ID_RE.fullmatch(path.stem))
    except FileNotFoundError:
        return []
    return [_read_key(path) for path in names]


def _read_key(path: Path) -> RecordingKey:
    try:
        with open(path, "rb") as file:
            if os.fstat(file.fileno()).st_mode & 0o077:
                raise RecordingKeyError(f"the recording key {path} is accessible to other users; run: chmod 600 {path}")
            secret = file.read(KEY_SIZE + 1)
    except OSError as exc:
        raise RecordingKeyError(f"cannot read the recording key {path}: {exc.strerror or exc}") from exc
    if len(secret) != KEY_SIZE:
        raise RecordingKeyError(f"the recording key {path} holds {len(secret)} bytes instead of {KEY_SIZE}: "
                                "restore it from a backup")
    return RecordingKey(path.stem, secret)
