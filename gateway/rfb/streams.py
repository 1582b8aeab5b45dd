"""Bytes received from a peer and not yet parsed, for the generator-based parsers.

A parser reads with ``yield from reader.read_exact(n)``: it pauses until ``n`` bytes
are buffered and resumes when more are fed, so a message split at any byte parses the
same (python-websockets' ``StreamReader``). Once :meth:`StreamReader.feed_eof` says the
peer closed, a read that the buffer cannot satisfy raises :class:`EOFError` instead of
pausing.
"""

from __future__ import annotations

from collections.abc import Generator


class StreamReader:
    """Bytes received and not yet consumed; parsers may peek at ``buffer`` in place."""

    __slots__ = ("buffer", "eof")

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.eof = False

    def feed_data(self, data: bytes) -> None:
        self.buffer += data

    def feed_eof(self) -> None:
        """The peer closed: no more data will come."""
        self.eof = True

    def wait_for(self, size: int) -> Generator[None, None, None]:
        """Wait until at least ``size`` bytes are buffered; :class:`EOFError` if the stream ends first."""
        while len(self.buffer) < size:
            if self.eof:
                raise EOFError(f"the stream ended after {len(self.buffer)} of {size} bytes")
            yield

    def read_exact(self, size: int) -> Generator[None, None, bytes]:
        """Wait for ``size`` bytes, then consume and return them."""
        while len(self.buffer) < size:  # wait_for() inlined: this runs for every message
            if self.eof:
                raise EOFError(f"the stream ended after {len(self.buffer)} of {size} bytes")
            yield
        return self.take(size)

    def take(self, size: int) -> bytes:
        """Consume and return ``size`` bytes, which must be buffered already."""
        with memoryview(self.buffer) as view:  # one copy, not two as with bytes(buffer[:size])
            data = bytes(view[:size])
        del self.buffer[:size]
        return data
