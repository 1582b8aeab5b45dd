"""The recording journal: one append-only file per session.

A record is a header ``>IBQ`` (payload length, :class:`RecordKind`, microseconds since the
session started) and the payload. The first record is HEADER (JSON); the last record of a
finished journal is END (JSON). A crash leaves a torn tail: the reader stops at the first
incomplete or corrupt record (or batch) and says where (``torn_at``).

Two container formats, told apart by the magic; :class:`JournalReader` reads both:

- format 2 (``DGJRNL\x00\x02``, what the gateway writes): records in batches, each
  encrypted with AES-256-GCM or checked by CRC-32 as a whole (:mod:`recorder.batches`);
- format 1 (:data:`JOURNAL_MAGIC`, journals of older gateways): each record followed by
  the CRC-32 of its header and payload.

File I/O only, no event loop or network: the asyncio writer (:mod:`recorder.writer`)
buffers records and drives :class:`JournalFile` from a worker thread. What the JSON
records say is :mod:`recorder.records`; here they are only JSON objects.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import re
import secrets
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import IntEnum
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO

from recorder.batches import BATCH_BYTES, BATCH_LENGTH, ENVELOPE_LENGTH, MAGIC_V2, BatchCodec, Envelope
from recorder.errors import JournalCorrupt
from recorder.keyring import RecordingKeyring, installed

JOURNAL_MAGIC = b"DGJRNL\x00\x01"
#: The version of the HEADER record's JSON (``"format"``), not of the container.
JOURNAL_FORMAT = 1
JOURNAL_SUFFIX = ".dgj"
#: Largest payload a record may carry; a longer length field means the record is corrupt.
MAX_RECORD = 16 << 20
RECORD_HEADER = struct.Struct(">IBQ")
RECORD_CRC = struct.Struct(">I")
RECORD_OVERHEAD = RECORD_HEADER.size + RECORD_CRC.size
#: re.ASCII: ``\d`` must not match other scripts' digits — ids become file names.
SESSION_ID_RE = re.compile(r"^\d{8}T\d{6}Z-[0-9a-f]{8}$", re.ASCII)


class RecordKind(IntEnum):
    HEADER = 1  # JSON: who, what, when, screen and pixel format
    SERVER_DATA = 2  # target→browser RFB bytes exactly as forwarded
    CLIENT_DATA = 3  # browser→target RFB bytes exactly as forwarded
    EVENT = 4  # JSON {"type": ...}
    INPUT_COUNTS = 5  # JSON {"keys", "pointer", "clicks", "cut_text"} when input is counted, not kept
    END = 6  # JSON {"ended", "ended_epoch", "reason", "crashed", "torn_at"}


_KINDS = frozenset(RecordKind)

#: What the writer accepts as record data.
Bytes = bytes | bytearray | memoryview


def new_session_id(now: datetime | None = None) -> str:
    """A fresh session id: the UTC start time and 32 random bits, e.g. ``20261125T080000Z-1a2b3c4d``."""
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    return f"{moment:%Y%m%dT%H%M%SZ}-{secrets.token_hex(4)}"


def is_session_id(text: object) -> bool:
    """Whether ``text`` is a well-formed session id (and so safe to use in a path)."""
    return isinstance(text, str) and SESSION_ID_RE.fullmatch(text) is not None


def recording_path(root: Path, session_id: str) -> Path:
    """Where a session's journal lives: ``root/YYYY/MM/DD/<id>.dgj``; ValueError for a malformed id."""
    if not is_session_id(session_id):
        raise ValueError(f"not a recording id: {session_id!r}")
    return root / session_id[0:4] / session_id[4:6] / session_id[6:8] / f"{session_id}{JOURNAL_SUFFIX}"


def iso_utc(epoch: float) -> str:
    """``epoch`` as ISO-8601 UTC with microseconds, e.g. ``2026-11-25T08:00:00.123456Z``."""
    return f"{datetime.fromtimestamp(epoch, UTC):%Y-%m-%dT%H:%M:%S.%fZ}"


def encode_json(value: dict[str, Any]) -> bytes:
    """A JSON record payload: compact UTF-8, strict (no NaN)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def append_record(buffer: bytearray, kind: int, offset_us: int, payload: Bytes) -> None:
    """Append one encoded record to ``buffer`` — the writer's hot path, so no intermediate objects."""
    header = RECORD_HEADER.pack(len(payload), kind, offset_us)
    buffer += header
    buffer += payload
    buffer += RECORD_CRC.pack(zlib.crc32(payload, zlib.crc32(header)))


def append_batched_record(buffer: bytearray, kind: int, offset_us: int, payload: Bytes) -> None:
    """Append one format-2 record (no CRC: its batch is sealed whole) — the writer's hot path."""
    buffer += RECORD_HEADER.pack(len(payload), kind, offset_us)
    buffer += payload


def encode_batched_record(kind: RecordKind, offset_us: int, payload: bytes) -> bytes:
    """One format-2 record as bytes."""
    return RECORD_HEADER.pack(len(payload), kind, offset_us) + payload


def encode_record(kind: RecordKind, offset_us: int, payload: bytes) -> bytes:
    """One format-1 record as bytes; ValueError if the payload is over :data:`MAX_RECORD`."""
    if len(payload) > MAX_RECORD:
        raise ValueError(f"a record payload is at most {MAX_RECORD} bytes, not {len(payload)}")
    buffer = bytearray()
    append_record(buffer, kind, offset_us, payload)
    return bytes(buffer)


@dataclass(frozen=True, slots=True)
class JournalRecord:
    kind: RecordKind
    offset_us: int
    payload: bytes
    position: int  # file offset of the record (format 2: of its batch)
    end: int  # file offset just after it (format 2: after its batch)


def _read_record(file: BinaryIO, position: int, size: int, max_record: int) -> JournalRecord | None:
    """The record at ``position`` (where ``file`` stands), or None if it is incomplete or corrupt.

    The length field is checked against ``max_record`` and the bytes left in the file
    before anything is read, so a garbled length never allocates.
    """
    if size - position < RECORD_OVERHEAD:
        return None
    header = file.read(RECORD_HEADER.size)
    length, kind, offset_us = RECORD_HEADER.unpack(header)
    if length > max_record or length > size - position - RECORD_OVERHEAD:
        return None
    payload = file.read(length)
    crc = file.read(RECORD_CRC.size)
    if len(payload) != length or len(crc) != RECORD_CRC.size:
        return None  # the file shrank under us
    if zlib.crc32(payload, zlib.crc32(header)) != RECORD_CRC.unpack(crc)[0] or kind not in _KINDS:
        return None
    return JournalRecord(RecordKind(kind), offset_us, payload, position, position + RECORD_OVERHEAD + length)


def _batch_records(records: bytes, position: int, end: int) -> list[JournalRecord] | None:
    """The records of one opened format-2 batch; None if they do not parse exactly."""
    found: list[JournalRecord] = []
    at = 0
    while at < len(records):
        if len(records) - at < RECORD_HEADER.size:
            return None
        length, kind, offset_us = RECORD_HEADER.unpack_from(records, at)
        at += RECORD_HEADER.size
        if length > len(records) - at or kind not in _KINDS:
            return None
        found.append(JournalRecord(RecordKind(kind), offset_us, records[at : at + length], position, end))
        at += length
    return found


def _read_batch(file: BinaryIO, codec: BatchCodec, seq: int, position: int, size: int,
                max_batch: int) -> list[JournalRecord] | None:
    """The records of the batch at ``position`` (where ``file`` stands); None if it is incomplete or does not open."""
    if size - position < BATCH_LENGTH.size:
        return None
    (length,) = BATCH_LENGTH.unpack(file.read(BATCH_LENGTH.size))
    if length > max_batch or length > size - position - BATCH_LENGTH.size:
        return None
    body = file.read(length)
    records = codec.open(seq, body) if len(body) == length else None
    if records is None:
        return None
    return _batch_records(records, position, position + BATCH_LENGTH.size + length)


def decode_json(payload: bytes) -> dict[str, Any] | None:
    """A JSON record payload's object (the inverse of :func:`encode_json`); None if it is not one."""
    try:
        value = json.loads(payload.decode("utf-8"))
    except (ValueError, RecursionError):  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        return None
    return value if isinstance(value, dict) else None


class JournalReader:
    """Reads a journal of either format: the HEADER at once, the other records by iterating.

    Iteration stops cleanly at the first incomplete or corrupt record or batch (bad length,
    CRC or tag, unknown kind, time going backwards, anything after END) and records its
    offset in ``torn_at``. Only a missing magic or HEADER raises :class:`JournalCorrupt`; an
    encrypted journal whose key is not in ``keyring`` (default: the keys :func:`installed`
    in this process) raises :class:`~recorder.errors.RecordingKeyError`.
    """

    def __init__(self, path: Path, *, max_record: int = MAX_RECORD, keyring: RecordingKeyring | None = None) -> None:
        self.path = path
        self.max_record = max_record
        self.codec: BatchCodec | None = None  # format 2 only
        self.batches = 0  # format 2, after iteration: the good batches (the next one's sequence number)
        with open(path, "rb") as file:
            size = os.fstat(file.fileno()).st_size
            magic = file.read(len(JOURNAL_MAGIC))
            if magic == MAGIC_V2:
                self.codec = _read_envelope(file, path, keyring or installed())
                start = file.tell()
                batch = _read_batch(file, self.codec, 0, start, size, self._max_batch)
                record = batch[0] if batch is not None and len(batch) == 1 else None
            elif magic == JOURNAL_MAGIC:
                record = _read_record(file, len(JOURNAL_MAGIC), size, max_record)
            else:
                raise JournalCorrupt(f"{path} is not a deskgate journal: its first bytes are not the journal magic")
        header = decode_json(record.payload) if record is not None and record.kind == RecordKind.HEADER else None
        if record is None or header is None:
            raise JournalCorrupt(f"{path} has no readable HEADER record after the journal magic")
        self.header: dict[str, Any] = header
        self._header_offset_us = record.offset_us
        self._records_start = record.end
        self.torn_at: int | None = None
        self.end: dict[str, Any] | None = None
        self.last_offset_us = record.offset_us

    @property
    def _max_batch(self) -> int:
        return self.max_record + RECORD_HEADER.size + BATCH_BYTES + 64

    @property
    def encrypted(self) -> bool:
        return self.codec is not None and self.codec.encrypted

    def __iter__(self) -> Iterator[JournalRecord]:
        self.torn_at, self.end, self.last_offset_us = None, None, self._header_offset_us
        self.batches = 1
        with open(self.path, "rb") as file:
            size = os.fstat(file.fileno()).st_size
            position = file.seek(self._records_start)
            while position < size:
                if self.end is not None:
                    records = None
                elif self.codec is not None:
                    records = _read_batch(file, self.codec, self.batches, position, size, self._max_batch)
                else:
                    record = _read_record(file, position, size, self.max_record)
                    records = [record] if record is not None else None
                if records is None or not self._valid(records):
                    self.torn_at = position
                    return
                for record in records:
                    if record.kind == RecordKind.END:
                        self.end = decode_json(record.payload)
                    self.last_offset_us = record.offset_us
                    yield record
                self.batches += 1
                position = records[-1].end

    def _valid(self, records: list[JournalRecord]) -> bool:
        """Whether these records (one batch, or one format-1 record) may follow what was read."""
        last, ended = self.last_offset_us, False
        for record in records:
            if (
                ended
                or record.offset_us < last
                or record.kind == RecordKind.HEADER
                or len(record.payload) > self.max_record
                or (record.kind == RecordKind.END and decode_json(record.payload) is None)
            ):
                return False
            last, ended = record.offset_us, record.kind == RecordKind.END
        return bool(records)

    def valid_size(self) -> int:
        """After iteration: where the good records end (``torn_at``, else the file size)."""
        return self.torn_at if self.torn_at is not None else os.stat(self.path).st_size


def _read_envelope(file: BinaryIO, path: Path, keyring: RecordingKeyring) -> BatchCodec:
    raw = file.read(ENVELOPE_LENGTH.size)
    length = ENVELOPE_LENGTH.unpack(raw)[0] if len(raw) == ENVELOPE_LENGTH.size else 0
    body = file.read(length)
    if not length or len(body) != length:
        raise JournalCorrupt(f"{path} has no readable envelope after the journal magic")
    try:
        envelope = Envelope.decode(body)
    except JournalCorrupt as exc:
        raise JournalCorrupt(f"{path}: {exc}") from None
    return BatchCodec.open_envelope(envelope, keyring)


def fsync_directory(directory: Path) -> None:
    """Make a directory's entries (a new or renamed file) durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _make_directories(directory: Path) -> list[Path]:
    """Create ``directory`` and missing parents (0700); returns those created, outermost first."""
    missing: list[Path] = []
    while not directory.exists():
        missing.append(directory)
        directory = directory.parent
    missing.reverse()
    for created in missing:
        created.mkdir(mode=0o700, exist_ok=True)  # exist_ok: another session made it just now
    return missing


class JournalFile:
    """A journal open for appending, exclusively locked (``flock``) for as long as it is open.

    The lock tells crash recovery a live journal from an orphan. Synchronous: the
    gateway calls it from a worker thread. Every method raises OSError as it comes.
    A journal this process created keeps the SHA-256 of what it wrote (:meth:`content_digest`),
    so sealing it needs no second pass over the file; fsynced bytes leave the page cache.
    """

    def __init__(self, fd: int, path: Path, size: int, *, digest: hashlib._Hash | None = None) -> None:
        self._fd = fd
        self.path = path
        self.size = size
        self._digest = digest  # of bytes 0..size, or None when not known (reopened, truncated)
        self._cached_from = size  # bytes before this offset are already out of the page cache

    @classmethod
    def create(cls, path: Path, header: dict[str, Any], codec: BatchCodec | None = None) -> JournalFile:
        """Create a new journal (0600, never over an existing file) holding the magic and HEADER, durably.

        With ``codec`` (what the gateway writes) it is format 2: the envelope, then batch 0
        holding the HEADER. Without, format 1, as older gateways wrote it (the readers' tests).
        """
        if codec is None:
            first: list[Bytes] = [JOURNAL_MAGIC + encode_record(RecordKind.HEADER, 0, encode_json(header))]
        else:
            batch = codec.seal(0, encode_batched_record(RecordKind.HEADER, 0, encode_json(header)))
            first = [codec.envelope.encode(), *batch]
        created = _make_directories(path.parent)
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            journal = cls(fd, path, 0, digest=hashlib.sha256())
            for part in first:
                journal.write(part)
            journal.fsync()
            for directory in {path.parent, *(made.parent for made in created)}:
                fsync_directory(directory)
        except BaseException:
            os.close(fd)
            path.unlink(missing_ok=True)  # it holds no session data: the session is refused
            raise
        return journal

    @classmethod
    def reopen(cls, path: Path) -> JournalFile | None:
        """Open an existing journal for appending; None while another process (a live writer) holds it."""
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        except BaseException:
            os.close(fd)
            raise
        return cls(fd, path, os.fstat(fd).st_size)

    def write(self, data: Bytes) -> None:
        """Append all of ``data``; ``size`` counts what reached the file even if this raises part-way."""
        with memoryview(data) as view:
            done = 0
            while done < len(view):
                written = os.pwrite(self._fd, view[done:], self.size)
                if written == 0:
                    raise OSError(errno.EIO, "the journal write made no progress")
                if self._digest is not None:
                    self._digest.update(view[done : done + written])
                done += written
                self.size += written

    def write_batch(self, codec: BatchCodec, seq: int, records: Bytes) -> None:
        """Append ``records`` (format 2, whole records) sealed as batch ``seq``."""
        for part in codec.seal(seq, records):
            self.write(part)

    def fsync(self) -> None:
        """Make every byte written durable, then drop those bytes from the page cache.

        A journal is written once and read rarely: keeping it cached only crowds out pages that
        are read, and on hosts that fault in fresh memory lazily (virtual machines) fresh
        page-cache pages cost more than the write itself.
        """
        os.fsync(self._fd)
        if self.size > self._cached_from:
            os.posix_fadvise(self._fd, self._cached_from, self.size - self._cached_from, os.POSIX_FADV_DONTNEED)
            self._cached_from = self.size

    def truncate(self, size: int) -> None:
        """Cut the file to ``size`` bytes (a torn tail); later writes continue there."""
        os.ftruncate(self._fd, size)
        self.size = size
        self._cached_from = min(self._cached_from, size)
        self._digest = None

    def content_digest(self) -> tuple[int, str] | None:
        """Size and SHA-256 of the file as written by this object; None when not known (reopened, truncated)."""
        if self._digest is None:
            return None
        return self.size, self._digest.hexdigest()

    def close(self) -> None:
        """Close the file and release the lock; idempotent."""
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            os.close(fd)

    def __enter__(self) -> JournalFile:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
