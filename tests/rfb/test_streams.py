"""The parsers' stream reader: reads pause until their bytes arrive, and fail once the stream has ended."""

from __future__ import annotations

from collections.abc import Generator

import pytest

from gateway.rfb.streams import StreamReader


def run(reader_generator: Generator[None, None, bytes | None]) -> tuple[bool, bytes | None]:
    """(done, value): one step of a read, as a parser's next() would take it."""
    try:
        next(reader_generator)
    except StopIteration as stop:
        return True, stop.value
    return False, None


def test_read_exact_waits_for_its_bytes_then_consumes_them() -> None:
    reader = StreamReader()
    read = reader.read_exact(3)
    assert run(read) == (False, None)
    reader.feed_data(b"ab")
    assert run(read) == (False, None)
    reader.feed_data(b"cde")
    assert run(read) == (True, b"abc")
    assert reader.buffer == b"de"


def test_wait_for_leaves_the_bytes_in_place() -> None:
    reader = StreamReader()
    reader.feed_data(b"xyz")
    assert run(reader.wait_for(3)) == (True, None)
    assert reader.take(2) == b"xy" and reader.buffer == b"z"


def test_a_read_the_ended_stream_cannot_satisfy_raises_eof_error() -> None:
    reader = StreamReader()
    reader.feed_data(b"ab")
    read = reader.read_exact(4)
    assert run(read) == (False, None)
    reader.feed_eof()
    with pytest.raises(EOFError, match="after 2 of 4 bytes"):
        run(read)
    with pytest.raises(EOFError):
        run(reader.wait_for(3))
    assert run(reader.read_exact(2)) == (True, b"ab")  # what was buffered can still be read
