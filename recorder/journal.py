"""The recording journal: one append-only file per session (format version 1).

Layout: the 8-byte :data:`JOURNAL_MAGIC`, then records. A record is a header ``>IBQ``
(payload length, :class:`RecordKind`, microseconds since the session started), the
payload, and the CRC-32 of header and payload. The first record is HEADER (JSON); the
last record of a finished journal is END (JSON). A crash leaves a torn tail: the reader
stops at the first incomplete or corrupt record and says where (``torn_at``).

File I/O only, no event loop or network: the asyncio writer (:mod:`recorder.writer`)
buffers records and drives :class:`JournalFile` from a worker thread. What the JSON
records say is :mod:`recorder.records`; here they are only JSON objects.
"""

from __future__ import annotations

import errno
import fcntl
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

from recorder.errors import JournalCorrupt

JOURNAL_MAGIC = b"DGJRNL\x00\x01"
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


def encode_record(kind: RecordKind, offset_us: int, payload: bytes) -> bytes:
    """One record as bytes; ValueError if the payload is over :data:`MAX_RECORD`."""
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
    position: int  # file offset of the record

    @property
    def end(self) -> int:
        """File offset just after this record."""
        return self.position + RECORD_OVERHEAD + len(self.payload)


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
    return JournalRecord(RecordKind(kind), offset_us, payload, position)


def decode_json(payload: bytes) -> dict[str, Any] | None:
    """A JSON record payload's object (the inverse of :func:`encode_json`); None if it is not one."""
    try:
        value = json.loads(payload.decode("utf-8"))
    except (ValueError, RecursionError):  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        return None
    return value if isinstance(value, dict) else None


class JournalReader:
    """Reads a journal: the HEADER at once, the other records by iterating.

    Iteration stops cleanly at the first incomplete or corrupt record (bad length or
    CRC, unknown kind, time going backwards, anything after END) and records its
    offset in ``torn_at``. Only a missing magic or HEADER raises :class:`JournalCorrupt`.
    """

    def __init__(self, path: Path, *, max_record: int = MAX_RECORD) -> None:
        self.path = path
        self.max_record = max_record
        with open(path, "rb") as file:
            size = os.fstat(file.fileno()).st_size
            if file.read(len(JOURNAL_MAGIC)) != JOURNAL_MAGIC:
                raise JournalCorrupt(f"{path} is not a deskgate journal: its first bytes are not the journal magic")
            record = _read_record(file, len(JOURNAL_MAGIC), size, max_record)
        header = decode_json(record.payload) if record is not None and record.kind == RecordKind.HEADER else None
        if record is None or header is None:
            raise JournalCorrupt(f"{path} has no readable HEADER record after the journal magic")
        self.header: dict[str, Any] = header
        self._header_offset_us = record.offset_us
        self._records_start = record.end
        self.torn_at: int | None = None
        self.end: dict[str, Any] | None = None
        self.last_offset_us = record.offset_us

    def __iter__(self) -> Iterator[JournalRecord]:
        self.torn_at, self.end, self.last_offset_us = None, None, self._header_offset_us
        with open(self.path, "rb") as file:
            size = os.fstat(file.fileno()).st_size
            position = file.seek(self._records_start)
            while position < size:
                record = None if self.end is not None else _read_record(file, position, size, self.max_record)
                end = decode_json(record.payload) if record is not None and record.kind == RecordKind.END else None
                if (
                    record is None
                    or record.offset_us < self.last_offset_us
                    or record.kind == RecordKind.HEADER
                    or (record.kind == RecordKind.END and end is None)
                ):
                    self.torn_at = position
                    return
                self.end = end
                self.last_offset_us = record.offset_us
                yield record
                position = record.end

    def valid_size(self) -> int:
        """After iteration: where the good records end (``torn_at``, else the file size)."""
        return self.torn_at if self.torn_at is not None else os.stat(self.path).st_size


def complete_records_end(path: Path, start: int, *, max_record: int = MAX_RECORD) -> int:
    """Offset just after the last complete record at or after ``start`` (a known record boundary)."""
    with open(path, "rb") as file:
        size = os.fstat(file.fileno()).st_size
        position = file.seek(start)
        while (record := _read_record(file, position, size, max_record)) is not None:
            position = record.end
    return position


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
    """

    def __init__(self, fd: int, path: Path, size: int) -> None:
        self._fd = fd
        self.path = path
        self.size = size

    @classmethod
    def create(cls, path: Path, header: dict[str, Any]) -> JournalFile:
        """Create a new journal (0600, never over an existing file) holding the magic and HEADER, durably."""
        first = JOURNAL_MAGIC + encode_record(RecordKind.HEADER, 0, encode_json(header))
        created = _make_directories(path.parent)
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            journal = cls(fd, path, 0)
            journal.write(first)
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
                done += written
                self.size += written

    def fsync(self) -> None:
        os.fsync(self._fd)

    def truncate(self, size: int) -> None:
        """Cut the file to ``size`` bytes (a torn tail); later writes continue there."""
        os.ftruncate(self._fd, size)
        self.size = size

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
