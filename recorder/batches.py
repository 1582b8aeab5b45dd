"""Journal format 2: records travel in batches, each sealed whole — AES-256-GCM or CRC-32.

After the magic ``DGJRNL\\x00\\x02`` comes the *envelope*: a ``>H`` length and a JSON object
``{"recording", "cipher", "key_id", "key_fingerprint", "wrapped_key"}`` (base64). ``cipher``
is ``aes-256-gcm`` (the recording's random data key, wrapped by a recording key of
:mod:`recorder.keyring`) or ``crc32`` (encryption off: integrity only). Then batches::

    batch := >I body length, body
    aes-256-gcm body := nonce (12 random bytes) + AES-GCM(data key, records, aad = "deskgate batch" + >Q seq)
    crc32 body       := records + >I CRC-32(>Q seq + records)

``seq`` counts batches from 0 (the first holds only the HEADER record). It is not stored:
it is the batch's place in the file, bound in by the tag or CRC, so a batch moved, dropped
or repeated fails to open. Records inside a batch are ``>IBQ`` (length, kind, microseconds)
and the payload — no CRC of their own: the batch's tag (or CRC) covers them.

Why random nonces rather than nonces derived from ``seq``: crash recovery cuts a torn last
batch and writes END in its place with the same ``seq``; a derived nonce would then encrypt
two plaintexts under one nonce (the cut batch may survive in a copy or a bucket segment).
96 random bits per batch keep that safe for far more batches than a journal holds.

A torn tail loses only its last batch: the reader stops at the first batch that is
incomplete or does not open. No I/O here: bytes in, bytes out.
"""

from __future__ import annotations

import base64
import json
import secrets
import struct
import zlib
from dataclasses import dataclass
from typing import Any, Literal

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from recorder.errors import JournalCorrupt
from recorder.keyring import KEY_SIZE, NONCE_SIZE, RecordingKeyring, WrappedKey

MAGIC_V2 = b"DGJRNL\x00\x02"
ENVELOPE_LENGTH = struct.Struct(">H")
BATCH_LENGTH = struct.Struct(">I")
BATCH_SEQ = struct.Struct(">Q")
BATCH_CRC = struct.Struct(">I")
TAG_SIZE = 16
#: The writer closes a batch once it holds this many bytes (a torn tail loses at most one batch).
BATCH_BYTES = 1 << 20
_AAD_PREFIX = b"deskgate batch"
Cipher = Literal["aes-256-gcm", "crc32"]


@dataclass(frozen=True, slots=True)
class Envelope:
    """What a format-2 journal says about itself in clear: no personal data, only how to open it."""

    recording_id: str
    cipher: Cipher
    wrapped: WrappedKey | None  # None for crc32

    def encode(self) -> bytes:
        value: dict[str, Any] = {"recording": self.recording_id, "cipher": self.cipher}
        if self.wrapped is not None:
            value |= {"key_id": self.wrapped.key_id, "key_fingerprint": self.wrapped.key_fingerprint,
                      "wrapped_key": base64.b64encode(self.wrapped.wrapped).decode()}
        raw = json.dumps(value, separators=(",", ":")).encode()
        return MAGIC_V2 + ENVELOPE_LENGTH.pack(len(raw)) + raw

    @classmethod
    def decode(cls, raw: bytes) -> Envelope:
        """The envelope from its JSON bytes; JournalCorrupt saying what is wrong."""
        try:
            value = json.loads(raw)
            cipher = value["cipher"]
            recording_id = value["recording"]
            if not isinstance(recording_id, str) or cipher not in ("aes-256-gcm", "crc32"):
                raise ValueError(cipher)
            wrapped = None
            if cipher == "aes-256-gcm":
                key_id, key_fingerprint = value["key_id"], value["key_fingerprint"]
                if not isinstance(key_id, str) or not isinstance(key_fingerprint, str):
                    raise ValueError(key_id)
                wrapped = WrappedKey(key_id, key_fingerprint, base64.b64decode(value["wrapped_key"], validate=True))
        except (ValueError, KeyError, TypeError, RecursionError):
            raise JournalCorrupt("its envelope (how it is encrypted) is unreadable") from None
        return cls(recording_id, cipher, wrapped)


class BatchCodec:
    """Seals and opens the batches of one journal."""

    def __init__(self, envelope: Envelope, data_key: bytes | None) -> None:
        self.envelope = envelope
        self._aead = AESGCM(data_key) if data_key is not None else None

    @classmethod
    def new(cls, recording_id: str, keyring: RecordingKeyring) -> BatchCodec:
        """A fresh journal's codec: a random data key wrapped with the current key, or CRC-32 when encryption is off."""
        if keyring.current is None:
            return cls(Envelope(recording_id, "crc32", None), None)
        data_key = secrets.token_bytes(KEY_SIZE)
        return cls(Envelope(recording_id, "aes-256-gcm", keyring.wrap(data_key, recording_id)), data_key)

    @classmethod
    def open_envelope(cls, envelope: Envelope, keyring: RecordingKeyring) -> BatchCodec:
        """The codec of an existing journal; RecordingKeyError when its key is missing or does not fit."""
        if envelope.wrapped is None:
            return cls(envelope, None)
        return cls(envelope, keyring.unwrap(envelope.wrapped, envelope.recording_id))

    @property
    def encrypted(self) -> bool:
        return self._aead is not None

    def seal(self, seq: int, records: bytes | bytearray | memoryview) -> list[bytes | memoryview]:
        """The batch ``seq`` holding ``records``, as parts to write one after the other (no joined copy)."""
        if self._aead is not None:
            nonce = secrets.token_bytes(NONCE_SIZE)
            sealed = self._aead.encrypt(nonce, records, _AAD_PREFIX + BATCH_SEQ.pack(seq))
            return [BATCH_LENGTH.pack(NONCE_SIZE + len(sealed)) + nonce, sealed]
        crc = zlib.crc32(records, zlib.crc32(BATCH_SEQ.pack(seq)))
        view = records if isinstance(records, memoryview) else memoryview(records)
        return [BATCH_LENGTH.pack(len(view) + BATCH_CRC.size), view, BATCH_CRC.pack(crc)]

    def open(self, seq: int, body: bytes) -> bytes | None:
        """The records of batch ``seq``, or None when the body does not open (torn, altered, moved)."""
        if self._aead is not None:
            if len(body) < NONCE_SIZE + TAG_SIZE:
                return None
            try:
                return self._aead.decrypt(body[:NONCE_SIZE], body[NONCE_SIZE:], _AAD_PREFIX + BATCH_SEQ.pack(seq))
            except InvalidTag:
                return None
        if len(body) < BATCH_CRC.size:
            return None
        records = body[: -BATCH_CRC.size]
        if zlib.crc32(records, zlib.crc32(BATCH_SEQ.pack(seq))) != BATCH_CRC.unpack(body[-BATCH_CRC.size :])[0]:
            return None
        return records

    def overhead(self) -> int:
        """Bytes a batch adds to its records."""
        return BATCH_LENGTH.size + (NONCE_SIZE + TAG_SIZE if self._aead is not None else BATCH_CRC.size)
