"""A connection to a target, read as the chunks the event loop received — the proxy's cheap way in.

``asyncio.StreamReader`` copies every byte three times on the way in (into its buffer, out
of it as a slice, into ``bytes``) and moves the rest of its buffer forward after each read:
on the proxy's hot path that cost more CPU than the framer (bench, loopback, uvloop: 1.7
CPU s/GB against 0.4 for a protocol that keeps the chunks). :class:`TargetStream` is the
protocol of one target connection — a TCP socket or a jump host's SSH channel — and hands
the chunks over as they came: one chunk as it is, several joined once. Reading pauses when
more than ``limit`` bytes wait (the browser is slow), and writing waits while the
transport's buffer is full, as streams do.
"""

from __future__ import annotations

import asyncio
import collections
from typing import cast

#: Bytes received and not yet read above which the target is no longer read from.
READ_LIMIT = 256 * 1024


class TargetStream(asyncio.Protocol):
    """One target connection: ``await read()`` the next bytes (``b""`` at its end), ``write`` and ``drain``."""

    def __init__(self, limit: int = READ_LIMIT) -> None:
        self._limit = limit
        self._chunks: collections.deque[bytes] = collections.deque()
        self._buffered = 0
        self._eof = False
        self._error: BaseException | None = None
        self._transport: asyncio.Transport  # set by connection_made, before anyone reads or writes
        self._reading_paused = False
        self._writing_paused = False
        self._readable: asyncio.Future[None] | None = None
        self._writable: asyncio.Future[None] | None = None
        self._closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    # -- the protocol's side: called by the transport --------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # a socket's, or a jump host's SSH channel

    def data_received(self, data: bytes) -> None:
        self._chunks.append(data)
        self._buffered += len(data)
        if self._buffered > self._limit and not self._reading_paused:
            self._reading_paused = True
            self._transport.pause_reading()
        self._wake_reader()

    def eof_received(self) -> bool:
        self._eof = True
        self._wake_reader()
        return False  # close our side too: RFB has no half-closed state

    def connection_lost(self, exc: Exception | None) -> None:
        self._eof = True
        if exc is not None:
            self._error = exc
        self._wake_reader()
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)
        if not self._closed.done():
            self._closed.set_result(None)

    def pause_writing(self) -> None:
        self._writing_paused = True

    def resume_writing(self) -> None:
        self._writing_paused = False
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)

    def _wake_reader(self) -> None:
        if self._readable is not None and not self._readable.done():
            self._readable.set_result(None)

    # -- the caller's side ----------------------------------------------------------------------

    async def read(self) -> bytes:
        """The bytes received since the last read (at least one), or ``b""`` once the target closed.

        Raises the connection's error (an OSError) when it broke before its end was read.
        """
        while not self._chunks:
            if self._error is not None:
                raise self._error
            if self._eof:
                return b""
            self._readable = asyncio.get_running_loop().create_future()
            try:
                await self._readable
            finally:
                self._readable = None
        data = self._chunks.popleft() if len(self._chunks) == 1 else b"".join(self._chunks)
        self._chunks.clear()
        self._buffered = 0
        if self._reading_paused and not self._transport.is_closing():
            self._reading_paused = False
            self._transport.resume_reading()
        return data

    def write(self, data: bytes) -> None:
        self._transport.write(data)

    async def drain(self) -> None:
        """Wait while the transport's buffer is full; ConnectionResetError once the connection is gone."""
        if self._closed.done() or self._transport.is_closing():
            await asyncio.sleep(0)  # let connection_lost run, as StreamWriter.drain does
            raise ConnectionResetError("the connection to the target is closed")
        while self._writing_paused:
            self._writable = asyncio.get_running_loop().create_future()
            try:
                await self._writable
            finally:
                self._writable = None
            if self._closed.done():
                raise ConnectionResetError("the connection to the target is closed")

    async def send(self, data: bytes) -> None:
        """Write ``data`` and drain."""
        self.write(data)
        await self.drain()

    def close(self) -> None:
        self._transport.close()

    async def wait_closed(self) -> None:
        await self._closed
