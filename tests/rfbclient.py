"""A small RFB client over the gateway's WebSocket, built from the project's own sans-I/O parts.

It plays the browser's role in functional tests: handshake (security None), pixel
format, encodings, update requests, and decoding into a numpy framebuffer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import aiohttp
import numpy as np

from gateway.rfb.framing import (
    ProtocolFailed,
    RectangleReceived,
    ServerEvent,
    ServerMessageFramer,
    UpdateEnd,
)
from gateway.rfb.handshake import ClientHandshake, HandshakeComplete
from gateway.rfb.messages import (
    RGBX8888,
    ClientMessage,
    Encoding,
    FramebufferUpdateRequest,
    PixelFormat,
    ServerInit,
    SetEncodings,
    SetPixelFormat,
)
from gateway.rfb_io import drive
from recorder.decoders import DecoderState, decode_rectangle
from recorder.framebuffer import Framebuffer


class RFBClosed(Exception):
    """The gateway closed the WebSocket; carries its close code and reason."""

    def __init__(self, code: int | None, reason: str) -> None:
        super().__init__(f"closed with {code}: {reason}")
        self.code = code
        self.reason = reason


class WebSocketRFBClient:
    """The browser side of a desktop session, for tests."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.server_init: ServerInit | None = None
        self._framer: ServerMessageFramer | None = None
        self._pending: list[ServerEvent] = []

    async def _receive(self, timeout: float = 10.0) -> bytes:
        msg = await self.ws.receive(timeout=timeout)
        if msg.type == aiohttp.WSMsgType.BINARY:
            return bytes(msg.data)
        if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING):
            raise RFBClosed(self.ws.close_code, str(msg.extra or ""))
        raise AssertionError(f"unexpected WebSocket message {msg.type}")

    async def handshake(self, timeout: float = 10.0) -> ServerInit:
        complete = await drive(ClientHandshake(password=None), self._receive, self._send_raw, timeout,
                               until=HandshakeComplete)
        init = self.server_init = complete.server_init
        self._framer = ServerMessageFramer(init.pixel_format, init.width, init.height)
        self._framer.receive_data(complete.trailing_data)
        return init

    async def _send_raw(self, data: bytes) -> None:
        if data:
            await self.ws.send_bytes(data)

    async def send(self, *messages: ClientMessage) -> None:
        await self._send_raw(b"".join(m.encode() for m in messages))
        assert self._framer is not None
        for message in messages:
            if isinstance(message, SetPixelFormat):
                self._framer.set_pixel_format(message.pixel_format)
            elif isinstance(message, SetEncodings):
                self._framer.set_encodings(message.encodings)

    async def next_event(self, timeout: float = 10.0) -> ServerEvent:
        assert self._framer is not None
        async with asyncio.timeout(timeout):
            while not self._pending:
                self._pending.extend(self._framer.events_received())
                if not self._pending:
                    self._framer.receive_data(await self._receive())
        event = self._pending.pop(0)
        if isinstance(event, ProtocolFailed):
            raise event.error
        return event

    async def capture(self, encodings: Sequence[int], pixel_format: PixelFormat = RGBX8888) -> np.ndarray:
        """Ask for the whole screen in ``encodings`` and return it as an (h, w, 3) RGB array."""
        init = self.server_init
        assert init is not None
        await self.send(
            SetPixelFormat(pixel_format),
            SetEncodings(tuple(encodings) + (Encoding.CURSOR,)),  # a local cursor keeps the pointer off the pixels
            FramebufferUpdateRequest(False, 0, 0, init.width, init.height),
        )
        state = DecoderState(pixel_format)
        framebuffer = Framebuffer(init.width, init.height)
        covered = np.zeros((init.height, init.width), dtype=bool)
        self.encodings_seen: set[int] = set()
        while True:
            event = await self.next_event()
            if isinstance(event, RectangleReceived):
                rect = event.rect
                self.encodings_seen.add(rect.encoding)
                decode_rectangle(state, framebuffer, rect, event.payload)
                if rect.encoding >= 0:
                    covered[rect.y : rect.y + rect.height, rect.x : rect.x + rect.width] = True
            elif isinstance(event, UpdateEnd) and covered.all():  # a cursor-only update may come first
                return framebuffer.pixels.copy()
