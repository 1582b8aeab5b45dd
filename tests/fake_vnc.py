"""A VNC server for tests, built on the project's sans-I/O ServerHandshake.

After the handshake it answers the first client message by streaming full-screen
Raw updates as fast as the connection takes them, and counts what it managed to
write: the measure of the gateway's backpressure.
"""

from __future__ import annotations

import asyncio

from gateway.rfb.errors import RFBError
from gateway.rfb.handshake import (
    ClientVersionReceived,
    HandshakeComplete,
    ServerHandshake,
)
from gateway.rfb.messages import (
    RGBX8888,
    Encoding,
    Rectangle,
    ServerInit,
    encode_update_header,
)
from gateway.rfb_io import drive, over_streams


class StreamingVNCServer:
    def __init__(self, width: int = 256, height: int = 256) -> None:
        self.width = width
        self.height = height
        self.bytes_written = 0
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        pixels = bytes(range(256)) * (width * height * 4 // 256)
        self.update = encode_update_header(1) + Rectangle(0, 0, width, height, Encoding.RAW).encode() + pixels

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        self.drop_connections()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def drop_connections(self) -> None:
        for writer in list(self._writers):
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            handshake = ServerHandshake()
            handshake.initiate()
            receive, send = over_streams(reader, writer)
            await drive(handshake, receive, send, 10, until=ClientVersionReceived)
            handshake.accept(ServerInit(self.width, self.height, RGBX8888, b"streaming"))
            complete = await drive(handshake, receive, send, 10, until=HandshakeComplete)
            if not complete.trailing_data:
                await reader.read(4096)  # the first client message starts the stream
            while True:
                writer.write(self.update)
                await writer.drain()
                self.bytes_written += len(self.update)
        except (ConnectionError, OSError, RFBError):
            pass  # the gateway left
        finally:
            self._writers.discard(writer)
            writer.close()
