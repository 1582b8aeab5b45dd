"""A VNC server for tests, built on the project's sans-I/O ServerHandshake.

After the handshake it answers the first client message by streaming full-screen
Raw updates as fast as the connection takes them, and counts what it managed to
write: the measure of the gateway's backpressure.
"""

from __future__ import annotations

import asyncio

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
            while True:
                writer.write(handshake.data_to_send())
                events = handshake.events_received()
                if any(isinstance(e, ClientVersionReceived) for e in events):
                    handshake.accept(ServerInit(self.width, self.height, RGBX8888, b"streaming"))
                    continue
                if any(isinstance(e, HandshakeComplete) for e in events):
                    break
                data = await reader.read(4096)
                if not data:
                    return
                handshake.receive_data(data)
            writer.write(handshake.data_to_send())
            await reader.read(4096)  # the first client message starts the stream
            while True:
                writer.write(self.update)
                await writer.drain()
                self.bytes_written += len(self.update)
        except (ConnectionError, OSError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()
