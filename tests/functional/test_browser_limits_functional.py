"""No browser holds the gateway: what one browser may send, through a running gateway.

A hostile (or broken) browser floods its session with the largest messages it may send,
each full of tiny PointerEvents, while another session on a real TigerVNC desktop keeps
asking for updates and a monitor keeps asking ``/healthz``: both must answer within
100 ms all along, measured from here. The gateway runs in this process, on this loop, so
a message handled in one go would hold every one of them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from gateway.demo import XvncDesktop
from gateway.rfb.errors import RFBError
from gateway.rfb.framing import ClientMessageFramer, ClientMessageReceived, UpdateEnd
from gateway.rfb.handshake import ClientVersionReceived, HandshakeComplete, ServerHandshake
from gateway.rfb.messages import (
    RGBX8888,
    ClientMessageType,
    FramebufferUpdateRequest,
    KeyEvent,
    PointerEvent,
    ServerInit,
)
from gateway.rfb_io import drive, over_streams
from gateway.web.desktop_routes import BROWSER_LIMITS
from tests.conftest import GatewayUnderTest, start_test_gateway
from tests.functional.test_desktop_functional import open_desktop
from tests.rfbclient import RFBClosed, WebSocketRFBClient

pytestmark = pytest.mark.functional

#: The responsiveness the issue asks for, under the flood.
MAX_LATENCY = 0.1
FLOOD_SECONDS = 3.0


class SinkVNCServer:
    """A VNC target (security None) that sends nothing after the handshake and frames all it receives."""

    def __init__(self) -> None:
        self.received: list[object] = []
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        for writer in list(self._writers):
            writer.close()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def count(self, kind: type) -> int:
        return sum(isinstance(message, kind) for message in self.received)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            handshake = ServerHandshake()
            handshake.initiate()
            receive, send = over_streams(reader, writer)
            await drive(handshake, receive, send, 10, until=ClientVersionReceived)
            handshake.accept(ServerInit(640, 480, RGBX8888, b"sink"))
            complete = await drive(handshake, receive, send, 10, until=HandshakeComplete)
            framer = ClientMessageFramer()
            data = complete.trailing_data
            while True:
                framer.receive_data(data)
                self.received.extend(event.message for event in framer.events_received()
                                     if isinstance(event, ClientMessageReceived))
                if not (data := await reader.read(65536)):
                    return
        except (ConnectionError, OSError, RFBError):
            pass  # the gateway left
        finally:
            self._writers.discard(writer)
            writer.close()


@pytest.fixture
async def sink() -> AsyncIterator[SinkVNCServer]:
    server = SinkVNCServer()
    await server.start()
    yield server
    await server.stop()


def largest_message_of_pointer_moves() -> bytes:
    """As many 6-byte PointerEvents as the largest message the gateway accepts holds (174,764)."""
    count = BROWSER_LIMITS.largest_message // 6
    layout = PointerEvent.LAYOUT  # packed directly: no message objects for the collector to follow
    return b"".join(layout.pack(ClientMessageType.POINTER_EVENT, 0, x % 640, x // 640 % 480) for x in range(count))


async def metric(http: aiohttp.ClientSession, gateway: GatewayUnderTest, sample: str) -> float:
    for line in (await (await http.get(gateway.gateway.metrics_url)).text()).splitlines():
        if line.startswith(sample + " "):
            return float(line.split()[-1])
    return 0.0


async def test_a_browser_flooding_tiny_pointer_events_holds_neither_the_loop_nor_other_sessions(
    tmp_path: Path, http: aiohttp.ClientSession, desktop: XvncDesktop, sink: SinkVNCServer
) -> None:
    gateway = await start_test_gateway(tmp_path, desktop.port, {"desk-sink": sink.port})
    try:
        assert (await gateway.login(http, "alice")).status == 200
        viewer = await open_desktop(http, gateway, "desk-01")
        await viewer.handshake()
        flooder = await open_desktop(http, gateway, "desk-sink")
        await flooder.handshake()
        flood = largest_message_of_pointer_moves()

        async def send_floods() -> None:
            while True:
                await flooder.ws.send_bytes(flood)  # waits while the gateway does not read

        async def health_checks() -> list[float]:
            latencies = []
            while not stop.is_set():
                started = time.perf_counter()
                async with http.get(f"{gateway.url}/healthz") as response:
                    assert response.status == 200
                    await response.read()
                latencies.append(time.perf_counter() - started)
                await asyncio.sleep(0.02)
            return latencies

        async def screen_updates() -> list[float]:
            latencies = []
            while not stop.is_set():
                started = time.perf_counter()
                await viewer.send(FramebufferUpdateRequest(False, 0, 0, 64, 64))
                while not isinstance(await viewer.next_event(), UpdateEnd):
                    pass
                latencies.append(time.perf_counter() - started)
                await asyncio.sleep(0.02)
            return latencies

        stop = asyncio.Event()
        began = time.monotonic()
        flooding_task = asyncio.create_task(send_floods())
        try:
            async with asyncio.timeout(30):  # until the gateway is working through the flood
                while not sink.count(PointerEvent):
                    await asyncio.sleep(0.01)
            probes = asyncio.gather(health_checks(), screen_updates())
            await asyncio.sleep(FLOOD_SECONDS)
            stop.set()
            health, updates = await probes
            assert not flooding_task.done()
        finally:
            flooding_task.cancel()
        elapsed = time.monotonic() - began

        assert max(health) < MAX_LATENCY, f"/healthz took {max(health) * 1000:.0f} ms under the flood"
        assert max(updates) < MAX_LATENCY, f"the other session waited {max(updates) * 1000:.0f} ms for an update"
        assert len(health) >= 10 and len(updates) >= 10
        # The flooding browser was read at the rate of its message budget, all along ...
        limits = BROWSER_LIMITS
        throttled = await metric(http, gateway, "deskgate_browser_throttled_seconds_total")
        assert throttled >= FLOOD_SECONDS / 2
        # ... what a person's mouse could have sent got through, and the rest was dropped and counted.
        forwarded = sink.count(PointerEvent)
        assert 0 < forwarded <= limits.pointer_move_burst + limits.pointer_moves_per_second * elapsed
        dropped = await metric(http, gateway, "deskgate_pointer_moves_dropped_total")
        assert dropped >= limits.message_burst - forwarded
        assert not flooder.ws.closed  # neither ends the flooding session
        await viewer.ws.close()
        # The flooder's close would wait behind its flood: the gateway ends its session at shutdown, and
        # reading here answers the gateway's close at once.
        answering = asyncio.create_task(flooder.ws.receive())
    finally:
        await gateway.gateway.stop()
    await answering


async def test_a_message_longer_than_any_client_message_ends_the_session(
    tmp_path: Path, http: aiohttp.ClientSession, sink: SinkVNCServer
) -> None:
    gateway = await start_test_gateway(tmp_path, sink.port)
    try:
        await gateway.login(http, "alice")
        client = await open_desktop(http, gateway)
        await client.handshake()
        await client.ws.send_bytes(bytes(BROWSER_LIMITS.largest_message + 1))
        with pytest.raises(RFBClosed) as closed:
            await client.next_event()
        assert closed.value.code == 1009  # message too big
        assert sink.received == []
        outcome = 'deskgate_sessions_total{outcome="message_too_big",protocol="vnc"}'
        async with asyncio.timeout(5):
            while await metric(http, gateway, outcome) != 1.0:
                await asyncio.sleep(0.05)
    finally:
        await gateway.gateway.stop()


async def test_a_flood_of_key_events_ends_the_session_and_is_counted(
    tmp_path: Path, http: aiohttp.ClientSession, sink: SinkVNCServer
) -> None:
    gateway = await start_test_gateway(tmp_path, sink.port)
    try:
        await gateway.login(http, "alice")
        client = await open_desktop(http, gateway)
        await client.handshake()
        limits = BROWSER_LIMITS
        keys = KeyEvent(True, 0x61).encode() + KeyEvent(False, 0x61).encode()
        started = time.monotonic()
        await client.ws.send_bytes(keys * limits.press_burst)  # twice the burst at once
        with pytest.raises(RFBClosed) as closed:
            await client.next_event()
        assert closed.value.code == 4012
        assert closed.value.reason.startswith("the browser sent key or button events faster than a person can")
        # What came within the limit went through, slice by slice, before the flood was seen.
        assert sink.count(KeyEvent) <= limits.press_burst + limits.presses_per_second * (time.monotonic() - started)
        outcome = 'deskgate_sessions_total{outcome="input_flood",protocol="vnc"}'
        async with asyncio.timeout(5):
            while await metric(http, gateway, outcome) != 1.0:
                await asyncio.sleep(0.05)
    finally:
        await gateway.gateway.stop()


async def test_websocket_compression_is_never_negotiated(
    tmp_path: Path, http: aiohttp.ClientSession, sink: SinkVNCServer
) -> None:
    gateway = await start_test_gateway(tmp_path, sink.port)
    try:
        await gateway.login(http, "alice")
        ws = await http.ws_connect(f"{gateway.ws_url}/ws/vnc/desk-01", protocols=["binary"], origin=gateway.url,
                                   compress=15)
        assert ws.compress == 0  # the browser's permessage-deflate offer was declined
        client = WebSocketRFBClient(ws)
        await client.handshake()
        await ws.close()
    finally:
        await gateway.gateway.stop()
