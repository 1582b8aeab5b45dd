"""A VNC server that replays a capture to every viewer, at recorded pace or flat out, and echoes keys.

Each connection runs the server handshake (security type None, the capture's geometry
and pixel format), then waits for the viewer's first update request and replays:

- ``Pace.FLAT``: message 0, then messages 1..n-1 in a loop, written as fast as the
  connection drains — the throughput figure.
- ``Pace.RECORDED``: message 0 at once, then the loop from the viewer's start index, each
  message at its captured time — the offered load of a real session. How late each message
  went out (written and drained) is kept: a proxy that does not keep up, or a load process
  that cannot, shows there.

Updates are not held back until the viewer asks again (its incremental requests are read,
not waited for): captured updates cannot be merged the way a live server merges changes,
so waiting on each round trip would stretch the workload by the proxy's latency instead
of offering the same load to every proxy — as with TigerVNC's continuous updates.

Every key press (KeyEvent, down) is answered at once with :meth:`Capture.echo_update`,
carrying the key, for the round-trip latency. A key release before the first update
request sets the connection's start index in the loop (``key`` = message index), so that
many concurrent sessions need not play the same moment of the office work together.

``python -m bench.replay CAPTURE [--pace flat|recorded]`` serves one on a free port and
prints ``{"port": N}`` on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

from bench.capture_file import Capture, read_capture
from gateway.rfb.errors import RFBError
from gateway.rfb.framing import (
    ClientMessageFramer,
    ClientMessageReceived,
    ProtocolFailed,
)
from gateway.rfb.handshake import (
    ClientVersionReceived,
    HandshakeComplete,
    ServerHandshake,
)
from gateway.rfb.messages import FramebufferUpdateRequest, KeyEvent
from gateway.rfb_io import drive, over_streams
from gateway.web.app import wait_for_stop_signal

_READ_SIZE = 1 << 16
_FLAT_CHUNK = 256 * 1024  # whole messages are grouped into writes of about this size
_HANDSHAKE_TIMEOUT = 10.0


class Pace(Enum):
    FLAT = "flat"
    RECORDED = "recorded"


@dataclass(slots=True, eq=False)
class Connection:
    """One viewer's connection: where its replay starts, and whether it asked for the first update."""

    writer: asyncio.StreamWriter
    start_index: int = 1
    first_request: asyncio.Event = field(default_factory=asyncio.Event)


class ReplayServer:
    """Serves ``capture`` to every viewer that connects; see the module docstring."""

    def __init__(self, capture: Capture, pace: Pace, *, passes: int | None = None) -> None:
        self.capture = capture
        self.pace = pace
        self.passes = passes  # None: loop until the viewer leaves
        self.port = 0
        self.connections: list[Connection] = []
        self._lateness: list[float] = []  # recorded pace: seconds each message went out (drained) after its time
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self._loop_messages = [message.data for message in capture.messages[1:]]
        self._flat_chunks = _group(self._loop_messages, _FLAT_CHUNK)

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._server = await asyncio.start_server(self._serve, host, port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        for connection in self.connections:
            connection.writer.close()
        for task in self._handlers:
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(5):
                    await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connection = Connection(writer)
        self.connections.append(connection)
        handler = asyncio.current_task()
        assert handler is not None
        self._handlers.add(handler)
        try:
            trailing = await self._handshake(reader, writer)
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(self._read_requests(connection, reader, trailing))
                await connection.first_request.wait()
                if self.pace is Pace.FLAT:
                    await self._replay_flat(connection)
                else:
                    await self._replay_recorded(connection)
                writer.close()  # the passes are over: the viewer sees the end of the stream
        except* (ConnectionError, OSError, EOFError):
            pass  # the viewer left
        except* asyncio.CancelledError:
            pass  # stop(): ending here keeps asyncio's streams from logging the cancellation
        finally:
            writer.close()
            self._handlers.discard(handler)

    async def _handshake(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes:
        handshake = ServerHandshake()
        handshake.initiate()
        receive, send = over_streams(reader, writer, _READ_SIZE)
        try:
            await drive(handshake, receive, send, _HANDSHAKE_TIMEOUT, until=ClientVersionReceived)
            handshake.accept(self.capture.server_init)
            complete = await drive(handshake, receive, send, _HANDSHAKE_TIMEOUT, until=HandshakeComplete)
        except RFBError as exc:  # a viewer that breaks the protocol or leaves half-way
            raise ConnectionError(f"viewer handshake failed: {exc}") from exc
        return complete.trailing_data

    async def _read_requests(self, connection: Connection, reader: asyncio.StreamReader, data: bytes) -> None:
        framer = ClientMessageFramer()
        while True:
            framer.receive_data(data)
            for event in framer.events_received():
                if isinstance(event, ProtocolFailed):
                    raise ConnectionError(f"viewer broke the protocol: {event.error}")
                assert isinstance(event, ClientMessageReceived)
                message = event.message
                if isinstance(message, FramebufferUpdateRequest):
                    connection.first_request.set()
                elif isinstance(message, KeyEvent):
                    if message.down:
                        connection.writer.write(self.capture.echo_update(message.key))
                    elif not connection.first_request.is_set() and 1 <= message.key < len(self.capture.messages):
                        connection.start_index = message.key
            data = await reader.read(_READ_SIZE)
            if not data:
                raise EOFError

    async def _replay_flat(self, connection: Connection) -> None:
        writer = connection.writer
        writer.write(self.capture.messages[0].data)
        passes = 0
        while self.passes is None or passes < self.passes:
            for chunk in self._flat_chunks:
                writer.write(chunk)
                await writer.drain()
            passes += 1

    async def _replay_recorded(self, connection: Connection) -> None:
        loop = asyncio.get_running_loop()
        writer = connection.writer
        messages = self.capture.messages
        writer.write(messages[0].data)
        begin = loop.time()
        start = connection.start_index
        loop_origin = messages[1].at
        skipped = messages[start].at - loop_origin  # loop time of the first message sent
        passes = 0
        while self.passes is None or passes < self.passes:
            for index in range(start if passes == 0 else 1, len(messages)):
                message = messages[index]
                loop_time = passes * self.capture.loop_duration + message.at - loop_origin - skipped
                due = begin + loop_time
                delay = due - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                writer.write(message.data)
                await writer.drain()
                self._lateness.append(loop.time() - due)
            passes += 1

    def take_lateness(self) -> list[float]:
        """Recorded pace, every connection: seconds each message went out (written and drained) after its
        captured time, since the last call."""
        taken, self._lateness = self._lateness, []
        return taken


def _group(messages: list[bytes], size: int) -> list[bytes]:
    """Consecutive whole messages joined into chunks of about ``size`` bytes."""
    chunks: list[bytes] = []
    current: list[bytes] = []
    length = 0
    for message in messages:
        current.append(message)
        length += len(message)
        if length >= size:
            chunks.append(b"".join(current))
            current, length = [], 0
    if current:
        chunks.append(b"".join(current))
    return chunks


async def _serve_forever(capture_path: Path, pace: Pace) -> None:
    server = ReplayServer(read_capture(capture_path), pace)
    await server.start()
    print(json.dumps({"port": server.port}), flush=True)
    try:
        await wait_for_stop_signal()
    finally:
        await server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.replay", description=__doc__.splitlines()[0])
    parser.add_argument("capture", type=Path)
    parser.add_argument("--pace", choices=[pace.value for pace in Pace], default=Pace.RECORDED.value)
    args = parser.parse_args()
    asyncio.run(_serve_forever(args.capture, Pace(args.pace)))


if __name__ == "__main__":
    main()
