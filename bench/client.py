"""The browser's role in every figure: one RFB viewer over WebSocket or plain TCP.

The same viewer talks to deskgate (which terminates RFB: the viewer's handshake is with
the gateway, security None), to websockify (which passes RFB through: the handshake is
with the replay server, security None too) and straight to the replay server over TCP
(the baseline). After the handshake it sends what noVNC sends — pixel format, the
capture's encodings, a full update request — and then either

- :meth:`ReplayViewer.count_flat`: counts bytes as fast as they come (flat-out replay),
  asking for an incremental update after every WebSocket message; or
- :meth:`ReplayViewer.follow`: walks the stream message by message, knowing from the
  capture which message comes next (so it never decodes or frames pixels), asks for an
  incremental update after every update as noVNC does, sends a key press every
  ``probe_interval`` and times the echo of each.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import aiohttp

from bench.capture_file import Capture
from gateway.rfb.handshake import ClientHandshake, HandshakeComplete
from gateway.rfb.messages import (
    FramebufferUpdateRequest,
    KeyEvent,
    ServerInit,
    SetEncodings,
    SetPixelFormat,
)
from gateway.rfb_io import drive

_READ_SIZE = 1 << 16
_HANDSHAKE_TIMEOUT = 15.0
_ECHO_PREFIX_SIZE = 16
#: Incremental update requests a flat-out viewer sends a second at most, like a 60 fps viewer: one per
#: WebSocket message would flood the gateway's browser limits, which then hold its Close behind them.
FLAT_REQUESTS_PER_SECOND = 60


class Desync(Exception):
    """The stream is not the capture the viewer expected: the proxy changed, lost or reordered bytes."""


class Transport(Protocol):
    async def send(self, data: bytes) -> None: ...

    async def receive(self) -> bytes:
        """The next bytes; ``b""`` once the peer closed."""
        ...

    async def close(self) -> None: ...


class WebSocketTransport:
    """RFB in binary WebSocket messages (the gateway or websockify)."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws

    async def send(self, data: bytes) -> None:
        await self.ws.send_bytes(data)

    async def receive(self) -> bytes:
        message = await self.ws.receive()
        if message.type == aiohttp.WSMsgType.BINARY:
            return bytes(message.data)
        if message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED):
            return b""
        raise ConnectionError(f"unexpected WebSocket message {message.type.name}: {message.data!r}")

    async def close(self) -> None:
        await self.ws.close()


class TCPTransport:
    """RFB straight over TCP (the baseline without a proxy)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    async def send(self, data: bytes) -> None:
        self._writer.write(data)
        await self._writer.drain()

    async def receive(self) -> bytes:
        return await self._reader.read(_READ_SIZE)

    async def close(self) -> None:
        self._writer.close()


async def connect_websocket(http: aiohttp.ClientSession, url: str, origin: str | None = None) -> WebSocketTransport:
    """Open ``url`` with subprotocol ``binary``, as noVNC does; ``origin`` for the gateway's Origin check."""
    ws = await http.ws_connect(url, protocols=["binary"], origin=origin, max_msg_size=0, autoping=True,
                               timeout=aiohttp.ClientWSTimeout(ws_close=5))
    return WebSocketTransport(ws)


async def connect_tcp(port: int) -> TCPTransport:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    return TCPTransport(reader, writer)


@dataclass(slots=True)
class FollowResult:
    """What one viewer saw while following a recorded-pace replay; callers may read and clear it any time."""

    received_bytes: int = 0
    updates: int = 0
    round_trips: list[float] = field(default_factory=list)  # seconds, one per echoed key press
    pending: dict[int, float] = field(default_factory=dict)  # key -> perf_counter() when it was pressed

    def lost_echoes(self, older_than: float = 1.0) -> int:
        """Key presses still unanswered after ``older_than`` seconds."""
        limit = time.perf_counter() - older_than
        return sum(1 for sent in self.pending.values() if sent < limit)


class ReplayViewer:
    """One viewer session of a replayed capture; see the module docstring."""

    def __init__(self, transport: Transport, capture: Capture) -> None:
        self.transport = transport
        self.capture = capture
        self.sent_bytes = 0  # RFB bytes sent after the handshake
        self._start_index = 1
        self._trailing = b""
        self._incremental = FramebufferUpdateRequest(True, 0, 0, capture.width, capture.height).encode()

    async def _send(self, data: bytes) -> None:
        self.sent_bytes += len(data)
        await self.transport.send(data)

    async def open(self, start_index: int = 1) -> ServerInit:
        """Handshake, then ask for the capture's encodings and a full update; the replay starts at ``start_index``."""
        complete = await drive(ClientHandshake(password=None), self.transport.receive, self.transport.send,
                               _HANDSHAKE_TIMEOUT, until=HandshakeComplete)
        self._trailing = complete.trailing_data
        self._start_index = start_index
        init = complete.server_init
        capture = self.capture
        if (init.width, init.height) != (capture.width, capture.height):
            raise Desync(f"the server is {init.width}x{init.height}, the capture {capture.width}x{capture.height}")
        await self._send(
            SetPixelFormat(capture.pixel_format).encode()
            + SetEncodings(capture.encodings).encode()
            + KeyEvent(False, start_index).encode()  # the replay's start index; see bench.replay
            + FramebufferUpdateRequest(False, 0, 0, capture.width, capture.height).encode()
        )
        return init

    async def count_flat(self, warmup: float, duration: float,
                         on_window: Callable[[], None] | None = None) -> tuple[int, float, int]:
        """Bytes received in ``duration`` seconds after ``warmup`` seconds, the window's exact length, and
        every byte received (warm-up included).

        ``on_window`` is called at the window's start and end (to read a proxy's CPU time).
        """
        loop = asyncio.get_running_loop()
        window_start = loop.time() + warmup
        window_end = window_start + duration
        counted = 0
        in_window = False
        started = 0.0
        data = self._trailing
        total = 0
        next_request = 0.0
        while True:
            total += len(data)
            now = loop.time()
            if not in_window and now >= window_start:
                in_window, started = True, now
                if on_window is not None:
                    on_window()
            elif in_window:
                counted += len(data)
            if now >= window_end:
                if on_window is not None:
                    on_window()
                return counted, now - started, total
            if now >= next_request:  # as a viewer asks: at most FLAT_REQUESTS_PER_SECOND, not one per message
                await self._send(self._incremental)
                next_request = now + 1 / FLAT_REQUESTS_PER_SECOND
            data = await self.transport.receive()
            if not data:
                raise ConnectionError("the stream ended during a flat-out run")

    async def follow(self, result: FollowResult, probe_interval: float | None = None) -> None:
        """Follow the replay into ``result`` until the stream ends or the task is cancelled.

        With ``probe_interval``, a key is pressed every so many seconds (from a random phase,
        so that many viewers do not press together) and the round trip of its echo is kept.
        """
        walker = StreamWalker(self.capture, self._start_index)
        prober = asyncio.create_task(self._probe(result, probe_interval)) if probe_interval else None
        try:
            data = self._trailing
            while True:
                updates, echoes = walker.feed(data)
                now = time.perf_counter()
                for key in echoes:
                    result.round_trips.append(now - result.pending.pop(key))
                result.received_bytes += len(data)
                result.updates += updates
                for _ in range(updates):
                    await self._send(self._incremental)
                data = await self.transport.receive()
                if not data:
                    return
        finally:
            if prober is not None:
                prober.cancel()

    async def _probe(self, result: FollowResult, interval: float) -> None:
        await asyncio.sleep(random.uniform(0, interval))
        for key in itertools.count(1):
            result.pending[key] = time.perf_counter()
            await self._send(KeyEvent(True, key).encode())
            await asyncio.sleep(interval)


class StreamWalker:
    """Follows a replayed stream message by message from the capture's lengths, spotting echo updates.

    At each message boundary the next bytes are either the next captured message or an echo
    (:meth:`Capture.echo_update`), which starts with a 16-byte prefix no captured message
    starts with; the first byte that differs from that prefix decides. Every message
    shorter than 16 bytes differs from it within its own length (RFB message types, and
    the rectangle count of an update), so a decision never needs bytes of the next one.
    """

    def __init__(self, capture: Capture, start_index: int) -> None:
        self._messages = [message.data for message in capture.messages]
        self._updates = [message.is_update for message in capture.messages]
        self._echo_prefix = capture.echo_prefix
        self._echo_size = len(capture.echo_update(0))
        self._next = 0  # index of the next captured message
        self._after_first = start_index
        self._remaining = 0  # bytes left of the captured message being received
        self._head = b""  # bytes at a boundary that still match the echo prefix

    def feed(self, data: bytes) -> tuple[int, list[int]]:
        """Consume ``data``; return how many captured updates completed and the keys of the echoes."""
        updates = 0
        echoes: list[int] = []
        position, end = 0, len(data)
        while position < end:
            if self._remaining:
                taken = min(self._remaining, end - position)
                self._remaining -= taken
                position += taken
                if not self._remaining:
                    updates += self._advance()
                continue
            head = self._head + data[position : position + self._echo_size - len(self._head)]
            taken = len(head) - len(self._head)
            prefix = self._echo_prefix
            differs_at = next((i for i in range(min(len(head), len(prefix))) if head[i] != prefix[i]), None)
            if differs_at is not None:
                message = self._messages[self._next]
                known = differs_at + 1  # bytes of the captured message seen so far
                if not message.startswith(head[:known]):
                    raise Desync(f"at message {self._next}: got {head[:known]!r}, expected {message[:known]!r}")
                position += known - len(self._head)
                self._head = b""
                self._remaining = len(message) - known
                if not self._remaining:
                    updates += self._advance()
            elif len(head) == self._echo_size:
                echoes.append(int.from_bytes(head[len(prefix) :], "big"))
                position += taken
                self._head = b""
            else:
                self._head = head
                position += taken
        return updates, echoes

    def _advance(self) -> int:
        """The captured message ``_next`` is complete; return 1 if it was an update."""
        was_update = int(self._updates[self._next])
        if self._next == 0:
            self._next = self._after_first
        else:
            self._next = self._next + 1 if self._next + 1 < len(self._messages) else 1
        return was_update
