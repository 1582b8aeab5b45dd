"""The recorder's exception tree.

    RecordingError
     └── DecodeError            a rectangle's data is malformed, or over a decoding limit
          └── CodecUnavailable  well-formed data that needs a library which is not installed

Decoders raise only these for anything a server (or a corrupt recording) can send:
never IndexError, ValueError, zlib.error or MemoryError.
"""

from __future__ import annotations


class RecordingError(Exception):
    """Base class of every error the recorder raises on purpose."""


class DecodeError(RecordingError):
    """Pixel data cannot be decoded: malformed, inconsistent, or over a limit."""


class CodecUnavailable(DecodeError):
    """The data looks valid but decoding it needs an optional library (e.g. JPEG)."""
