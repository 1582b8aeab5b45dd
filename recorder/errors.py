"""The recorder's exception tree.

    RecordingError
     ├── DecodeError            a rectangle's data is malformed, or over a decoding limit
     │    └── CodecUnavailable  well-formed data that needs a library which is not installed
     ├── JournalCorrupt         a file is not a readable journal (bad magic or HEADER), or a record's
     │                          JSON payload is malformed
     ├── RecordingUnavailable   a session's journal cannot be created: the session must not start
     ├── RecordingWriteFailed   a journal write or fsync failed: the session must end
     ├── IntegrityError         a sealed journal does not match its seal, or is torn
     └── RecordingKeyError      a recording key is missing or unusable, or an encrypted
                                file does not open with it (altered, or moved from another recording)

Decoders raise only these for anything a server (or a corrupt recording) can send:
never IndexError, ValueError, zlib.error or MemoryError.
"""

from __future__ import annotations

from typing import Literal

#: Why a journal write or fsync failed: the ``recording_failures_total`` reason.
FailureReason = Literal["disk_full", "io_error", "file_too_large", "permission", "upload_failed"]


class RecordingError(Exception):
    """Base class of every error the recorder raises on purpose."""


class DecodeError(RecordingError):
    """Pixel data cannot be decoded: malformed, inconsistent, or over a limit."""


class CodecUnavailable(DecodeError):
    """The data looks valid but decoding it needs an optional library (e.g. JPEG)."""


class JournalCorrupt(RecordingError):
    """The file is not a readable journal (its magic or HEADER is missing or garbled), or a record's payload is."""


class RecordingUnavailable(RecordingError):
    """A session's journal cannot be created (or the recording key is unusable): refuse the session."""


class RecordingWriteFailed(RecordingError):
    """Writing or fsyncing a session's journal failed; ``reason`` is the metric label."""

    def __init__(self, reason: FailureReason, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class IntegrityError(RecordingError):
    """A journal does not match its seal (changed, truncated, other key) or is torn."""


class RecordingKeyError(RecordingError):
    """A recording key is missing or unusable, or an encrypted recording does not open with it."""
