"""TargetStream over real loopback sockets: chunks as received, flow control both ways, end and errors."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from gateway.reach import open_tcp
from gateway.target_stream import TargetStream


@dataclass
class Peer:
    """The target's side of one connection."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter


@pytest.fixture
async def connected() -> AsyncIterator[tuple[TargetStream, Peer]]:
    accepted: asyncio.Queue[Peer] = asyncio.Queue()

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await accepted.put(Peer(reader, writer))

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    stream = await open_tcp("desk-01", "127.0.0.1", port, None, None)
    peer = await asyncio.wait_for(accepted.get(), 5)
    try:
        yield stream, peer
    finally:
        stream.close()
        peer.writer.close()
        server.close()
        await server.wait_closed()


async def read_exactly(stream: TargetStream, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = await asyncio.wait_for(stream.read(), 5)
        assert chunk, "the stream ended early"
        data += chunk
    return data


async def test_bytes_arrive_in_order_and_the_end_reads_empty(connected: tuple[TargetStream, Peer]) -> None:
    stream, peer = connected
    sent = bytes(range(256)) * 1000
    peer.writer.write(sent)
    await peer.writer.drain()
    assert await read_exactly(stream, len(sent)) == sent
    peer.writer.close()
    assert await asyncio.wait_for(stream.read(), 5) == b""
    assert await stream.read() == b""  # and stays at its end
    await asyncio.wait_for(stream.wait_closed(), 5)


async def test_one_chunk_is_handed_over_without_a_copy() -> None:
    stream = TargetStream()
    chunk = b"x" * 70_000
    stream.data_received(chunk)
    assert await stream.read() is chunk
    stream.data_received(b"ab")
    stream.data_received(b"cd")
    assert await stream.read() == b"abcd"  # several are joined once


async def test_reading_pauses_over_the_limit_and_resumes_when_read() -> None:
    stream = TargetStream(limit=10)
    paused: list[str] = []

    class Transport(asyncio.Transport):
        def pause_reading(self) -> None:
            paused.append("pause")

        def resume_reading(self) -> None:
            paused.append("resume")

        def is_closing(self) -> bool:
            return False

    stream.connection_made(Transport())
    stream.data_received(b"0123456789")
    assert paused == []
    stream.data_received(b"!")
    stream.data_received(b"?")
    assert paused == ["pause"]
    assert await stream.read() == b"0123456789!?"
    assert paused == ["pause", "resume"]


async def test_a_slow_target_holds_the_writer_until_it_reads(connected: tuple[TargetStream, Peer]) -> None:
    stream, peer = connected
    stream._transport.set_write_buffer_limits(high=64 * 1024)  # the transport's own, as in production
    sock = stream._transport.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)
    block = b"y" * (1 << 20)
    writing = asyncio.ensure_future(stream.send(block * 8))
    await asyncio.sleep(0.2)
    assert not writing.done()  # 8 MiB do not fit in the socket's and the transport's buffers
    received = await asyncio.wait_for(peer.reader.readexactly(len(block) * 8), 10)
    await asyncio.wait_for(writing, 5)
    assert received == block * 8


async def test_a_broken_connection_is_an_error_after_the_bytes_before_it() -> None:
    stream = TargetStream()
    stream.data_received(b"last words")
    stream.connection_lost(ConnectionResetError("reset by peer"))
    assert await stream.read() == b"last words"
    with pytest.raises(ConnectionResetError, match="reset by peer"):
        await stream.read()
    await stream.wait_closed()


async def test_writing_to_a_closed_connection_fails(connected: tuple[TargetStream, Peer]) -> None:
    stream, peer = connected
    stream.close()
    await asyncio.wait_for(stream.wait_closed(), 5)
    with pytest.raises(ConnectionResetError, match="closed"):
        await stream.send(b"late")
