"""Exports at rest (videos, posters, clips): encrypted in fixed-size chunks, each its own GCM message.

Layout::

    "DGEXPT\\x00\\x01", >H envelope length, envelope JSON
        {"recording", "key_id", "key_fingerprint", "wrapped_key", "size", "chunk"}
    chunk i := AES-GCM(data key, plaintext[i*chunk : (i+1)*chunk], nonce = >4x >Q i,
                       aad = "deskgate export" + >Q i + (b"\\x01" for the last chunk else b"\\x00"))

Each file has its own random data key (wrapped like a journal's) and is written once, so a
nonce derived from the chunk's index never repeats under a key. The last-chunk flag makes a
truncated file fail rather than end early. A byte range of the plaintext maps to whole
chunks — HTTP Range on a video reads only the chunks it needs, from a file or a bucket.

Files without the magic are served as they are (exports made before encryption, or with
``storage.encrypt_recordings: false``). No event loop here.
"""

from __future__ import annotations

import json
import os
import secrets
import struct
from base64 import b64decode, b64encode
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from recorder.batches import TAG_SIZE
from recorder.errors import RecordingKeyError
from recorder.keyring import KEY_SIZE, RecordingKeyring, WrappedKey

EXPORT_MAGIC = b"DGEXPT\x00\x01"
CHUNK = 64 << 10
_LENGTH = struct.Struct(">H")
_INDEX = struct.Struct(">Q")
#: Enough of a file's start to hold its whole header.
HEADER_PREFIX = 4096


def _nonce(index: int) -> bytes:
    return b"\x00\x00\x00\x00" + _INDEX.pack(index)


def _aad(index: int, last: bool) -> bytes:
    return b"deskgate export" + _INDEX.pack(index) + (b"\x01" if last else b"\x00")


def encrypt_file(source: Path, target: Path, keyring: RecordingKeyring, recording_id: str) -> None:
    """Write ``source`` encrypted to ``target`` (0600, atomically, durably); ``source`` is left as it is."""
    data_key = secrets.token_bytes(KEY_SIZE)
    wrapped = keyring.wrap(data_key, recording_id)
    aead = AESGCM(data_key)
    size = source.stat().st_size
    envelope = json.dumps({"recording": recording_id, "key_id": wrapped.key_id,
                           "key_fingerprint": wrapped.key_fingerprint,
                           "wrapped_key": b64encode(wrapped.wrapped).decode(), "size": size, "chunk": CHUNK},
                          separators=(",", ":")).encode()
    temporary = target.with_name(target.name + ".encrypting")
    fd = os.open(temporary, os.O_CREAT | os.O_TRUNC | os.O_WRONLY | os.O_CLOEXEC, 0o600)
    try:
        with os.fdopen(fd, "wb") as out, open(source, "rb") as plain:
            out.write(EXPORT_MAGIC + _LENGTH.pack(len(envelope)) + envelope)
            chunks = max(1, -(-size // CHUNK))
            for index in range(chunks):
                out.write(aead.encrypt(_nonce(index), plain.read(CHUNK), _aad(index, index == chunks - 1)))
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def encrypt_in_place(path: Path, keyring: RecordingKeyring, recording_id: str) -> None:
    """Replace a freshly written plain file with its encryption (the plain one is removed)."""
    plain = path.with_name(path.name + ".plain")
    os.replace(path, plain)
    try:
        encrypt_file(plain, path, keyring, recording_id)
    finally:
        plain.unlink(missing_ok=True)


def is_encrypted(prefix: bytes) -> bool:
    """Whether a file starting with ``prefix`` is an encrypted export."""
    return prefix.startswith(EXPORT_MAGIC)


@dataclass(frozen=True, slots=True)
class EncryptedExport:
    """An encrypted export's header: where its chunks start, its plaintext size, and how to open them."""

    header_size: int
    size: int  # plaintext bytes
    chunk: int
    aead: AESGCM

    @classmethod
    def parse(cls, prefix: bytes, keyring: RecordingKeyring, what: str) -> EncryptedExport:
        """The header from the file's first :data:`HEADER_PREFIX` bytes; RecordingKeyError if it does not open."""
        try:
            (length,) = _LENGTH.unpack_from(prefix, len(EXPORT_MAGIC))
            start = len(EXPORT_MAGIC) + _LENGTH.size
            if start + length > len(prefix):
                raise ValueError("short")
            value = json.loads(prefix[start : start + length])
            wrapped = WrappedKey(str(value["key_id"]), str(value["key_fingerprint"]),
                                 b64decode(value["wrapped_key"], validate=True))
            size, chunk, recording_id = value["size"], value["chunk"], value["recording"]
            if type(size) is not int or type(chunk) is not int or size < 0 or chunk < 1 or \
                    not isinstance(recording_id, str):
                raise ValueError("fields")
        except (ValueError, KeyError, TypeError, struct.error, RecursionError):
            raise RecordingKeyError(f"{what} is not a readable encrypted export") from None
        return cls(start + length, size, chunk, AESGCM(keyring.unwrap(wrapped, recording_id)))

    @property
    def chunks(self) -> int:
        return max(1, -(-self.size // self.chunk))

    def stored_range(self, start: int, end: int) -> tuple[int, int]:
        """The file bytes holding plaintext ``start`` to ``end`` (exclusive): whole chunks."""
        first, last = start // self.chunk, max(start, end - 1) // self.chunk
        stored = self.chunk + TAG_SIZE
        return (self.header_size + first * stored,
                self.header_size + last * stored + min(self.chunk, self.size - last * self.chunk) + TAG_SIZE)

    def decrypt_range(self, stored: bytes, start: int, end: int, what: str) -> bytes:
        """Plaintext ``start`` to ``end`` from ``stored`` (what :meth:`stored_range` named)."""
        first = start // self.chunk
        size = self.chunk + TAG_SIZE
        low, high = self.stored_range(start, end)
        if len(stored) != high - low:
            raise RecordingKeyError(f"{what} was cut short: {len(stored)} of {high - low} stored bytes")
        plain = bytearray()
        for at in range(0, len(stored), size):
            index = first + at // size
            try:
                plain += self.aead.decrypt(_nonce(index), stored[at : at + size], _aad(index, index == self.chunks - 1))
            except InvalidTag:
                raise RecordingKeyError(f"{what} was altered or cut short (chunk {index} does not open)") from None
        offset = start - first * self.chunk
        return bytes(plain[offset : offset + (end - start)])


def read_export(path: Path, keyring: RecordingKeyring, start: int = 0, end: int | None = None) -> bytes:
    """Plaintext ``start`` to ``end`` of an export file, encrypted or not."""
    with open(path, "rb") as file:
        prefix = file.read(HEADER_PREFIX)
        if not is_encrypted(prefix):
            file.seek(start)
            return file.read(-1 if end is None else max(0, end - start))
        export = EncryptedExport.parse(prefix, keyring, path.name)
        end = export.size if end is None else min(end, export.size)
        if end <= start:
            return b""
        first, last = export.stored_range(start, end)
        file.seek(first)
        return export.decrypt_range(file.read(last - first), start, end, path.name)
