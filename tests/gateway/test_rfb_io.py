"""drive(): the handshake machines over real asyncio streams on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from gateway.rfb.errors import LocalProtocolError, ProtocolViolation, TargetUnavailable
from gateway.rfb.handshake import (
    ClientHandshake,
    ClientVersionReceived,
    HandshakeComplete,
    HandshakeState,
    ServerHandshake,
)
from gateway.rfb.messages import RGBX8888, KeyEvent, ServerInit
from gateway.rfb_io import drive, over_streams

SERVER_INIT = ServerInit(800, 600, RGBX8888, b"loopback")
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[object]]


class Peer:
    """A loopback server running ``handler`` on each connection; what it returned or raised is kept."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.outcome: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        self.port = 0

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            self.outcome.set_result(await self.handler(reader, writer))
        except Exception as exc:
            self.outcome.set_exception(exc)
        finally:
            writer.close()


Serve = Callable[[Handler], Awaitable[tuple[Peer, asyncio.StreamReader, asyncio.StreamWriter]]]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    servers: list[asyncio.Server] = []
    writers: list[asyncio.StreamWriter] = []

    async def start(handler: Handler) -> tuple[Peer, asyncio.StreamReader, asyncio.StreamWriter]:
        peer = Peer(handler)
        server = await asyncio.start_server(peer._serve, "127.0.0.1", 0)
        servers.append(server)
        peer.port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", peer.port)
        writers.append(writer)
        return peer, reader, writer

    yield start
    for writer in writers:
        writer.close()
    for server in servers:
        server.close()
        await server.wait_closed()


async def accepting_server(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> HandshakeComplete:
    handshake = ServerHandshake()
    handshake.initiate()
    receive, send = over_streams(reader, writer)
    await drive(handshake, receive, send, 5, until=ClientVersionReceived)
    handshake.accept(SERVER_INIT)
    return await drive(handshake, receive, send, 5, until=HandshakeComplete)


async def test_our_client_and_server_complete_each_other_over_tcp(serve: Serve) -> None:
    peer, reader, writer = await serve(accepting_server)
    handshake = ClientHandshake(shared=False)
    complete = await drive(handshake, *over_streams(reader, writer), 5, until=HandshakeComplete)
    assert (complete.version, complete.server_init) == ((3, 8), SERVER_INIT)
    assert handshake.state is HandshakeState.COMPLETE
    server_side = await asyncio.wait_for(peer.outcome, 5)
    assert isinstance(server_side, HandshakeComplete) and server_side.shared is False


async def test_bytes_after_the_handshake_are_handed_over(serve: Serve) -> None:
    async def eager_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> HandshakeComplete:
        async def send_with_a_key_event(data: bytes) -> None:  # ClientInit and the first message in one write
            writer.write(data + (KeyEvent(True, 1).encode() if data == b"\x00" else b""))
            await writer.drain()

        receive, _ = over_streams(reader, writer)
        return await drive(ClientHandshake(shared=False), receive, send_with_a_key_event, 5, until=HandshakeComplete)

    peer, reader, writer = await serve(eager_client)
    server = ServerHandshake()
    server.initiate()
    receive, send = over_streams(reader, writer)
    await drive(server, receive, send, 5, until=ClientVersionReceived)
    server.accept(SERVER_INIT)
    complete = await drive(server, receive, send, 5, until=HandshakeComplete)
    await asyncio.wait_for(peer.outcome, 5)
    assert complete.trailing_data == KeyEvent(True, 1).encode()


async def test_a_peer_that_closes_half_way_fails_the_handshake(serve: Serve) -> None:
    async def version_then_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"RFB 003.008\n")
        await writer.drain()

    _, reader, writer = await serve(version_then_close)
    with pytest.raises(TargetUnavailable, match="closed the connection during the handshake"):
        await drive(ClientHandshake(), *over_streams(reader, writer), 5, until=HandshakeComplete)


async def test_a_rejection_is_raised_with_its_reason(serve: Serve) -> None:
    async def rejecting_server(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handshake = ServerHandshake()
        handshake.initiate()
        receive, send = over_streams(reader, writer)
        await drive(handshake, receive, send, 5, until=ClientVersionReceived)
        handshake.reject("not today")
        await send(handshake.data_to_send())

    _, reader, writer = await serve(rejecting_server)
    with pytest.raises(TargetUnavailable, match="refused the connection: not today"):
        await drive(ClientHandshake(), *over_streams(reader, writer), 5, until=HandshakeComplete)


async def test_a_peer_that_breaks_the_protocol_fails_the_handshake(serve: Serve) -> None:
    async def http_server(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 400 Bad Request\r\n\r\n")
        await writer.drain()
        await reader.read()

    _, reader, writer = await serve(http_server)
    with pytest.raises(ProtocolViolation, match="expected a protocol version"):
        await drive(ClientHandshake(), *over_streams(reader, writer), 5, until=HandshakeComplete)


async def test_a_silent_peer_times_out(serve: Serve) -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()

    _, reader, writer = await serve(silent)
    with pytest.raises(TimeoutError):
        await drive(ClientHandshake(), *over_streams(reader, writer), 0.2, until=HandshakeComplete)


async def test_waiting_for_an_event_the_machine_does_not_stop_at_is_our_bug(serve: Serve) -> None:
    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await drive(ClientHandshake(), *over_streams(reader, writer), 5, until=HandshakeComplete)

    _, reader, writer = await serve(client)
    server = ServerHandshake()
    server.initiate()
    receive, send = over_streams(reader, writer)
    with pytest.raises(LocalProtocolError, match="stopped at ClientVersionReceived, not HandshakeComplete"):
        await drive(server, receive, send, 5, until=HandshakeComplete)  # it waits for accept() first
    with pytest.raises(LocalProtocolError, match="AWAITING_VERDICT"):
        await drive(server, receive, send, 5, until=HandshakeComplete)
    with pytest.raises(LocalProtocolError, match="INITIAL"):
        await drive(ServerHandshake(), receive, send, 5, until=ClientVersionReceived)  # initiate() first
