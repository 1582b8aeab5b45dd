"""A bounds-checked cursor over untrusted rectangle bytes."""

from __future__ import annotations

from recorder.errors import DecodeError


class PayloadReader:
    """Reads big-endian fields from a payload; running short or leaving bytes over is a DecodeError."""

    __slots__ = ("_data", "_length", "_position", "what")

    def __init__(self, data: bytes | memoryview, what: str) -> None:
        self._data = memoryview(data).cast("B")
        self._length = len(self._data)
        self._position = 0
        self.what = what

    @property
    def data(self) -> memoryview:
        """The whole payload, for parsers that walk it byte by byte (then :meth:`seek`)."""
        return self._data

    @property
    def position(self) -> int:
        return self._position

    @property
    def remaining(self) -> int:
        return self._length - self._position

    def seek(self, position: int) -> None:
        """Continue reading at ``position``, which must not go backwards or past the end."""
        if not self._position <= position <= len(self._data):
            raise DecodeError(f"{self.what}: cannot move from offset {self._position} to {position}")
        self._position = position

    def take(self, size: int) -> memoryview:
        """The next ``size`` bytes."""
        start = self._position
        end = start + size
        if size < 0 or end > self._length:
            raise DecodeError(f"{self.what}: needs {size} more bytes at offset {start}, only {self.remaining} left")
        self._position = end
        return self._data[start:end]

    def u8(self) -> int:
        position = self._position
        if position >= self._length:
            self.take(1)  # raises: nothing left
        self._position = position + 1
        return self._data[position]

    def u16(self) -> int:
        return int.from_bytes(self.take(2), "big")

    def u32(self) -> int:
        return int.from_bytes(self.take(4), "big")

    def expect_end(self) -> None:
        """Raise DecodeError if bytes are left over: the framing and the data disagree."""
        if self.remaining:
            raise DecodeError(f"{self.what}: {self.remaining} unexpected bytes after the data")
