"""How a desktop session behaves under pressure and at its ends, against a streaming VNC server."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from gateway.rfb.messages import FramebufferUpdateRequest
from recorder.journal import JournalReader, RecordKind
from tests.conftest import GatewayUnderTest, start_test_gateway
from tests.fake_vnc import StreamingVNCServer
from tests.functional.test_desktop_functional import open_desktop
from tests.rfbclient import RFBClosed, WebSocketRFBClient

pytestmark = pytest.mark.functional


@pytest.fixture
async def streaming_target() -> AsyncIterator[StreamingVNCServer]:
    server = StreamingVNCServer()
    await server.start()
    yield server
    await server.stop()


async def start_streaming_session(
    tmp_path: Path, http: aiohttp.ClientSession, server: StreamingVNCServer, **policy: str
) -> tuple[GatewayUnderTest, WebSocketRFBClient]:
    gateway = await start_test_gateway(tmp_path, 1, {"desk-stream": server.port}, **policy)
    await gateway.login(http, "alice")
    client = await open_desktop(http, gateway, "desk-stream")
    await client.handshake()
    await client.send(FramebufferUpdateRequest(False, 0, 0, server.width, server.height))
    return gateway, client


async def wait_until_stalled(server: StreamingVNCServer, quiet: float = 0.5, limit: float = 20.0) -> int:
    """Wait until the server's writes stop growing; return how much it wrote."""
    async with asyncio.timeout(limit):
        while True:
            before = server.bytes_written
            await asyncio.sleep(quiet)
            if server.bytes_written == before:
                return before


async def test_a_browser_that_stops_reading_pauses_the_target(
    tmp_path: Path, http: aiohttp.ClientSession, streaming_target: StreamingVNCServer
) -> None:
    gateway, client = await start_streaming_session(tmp_path, http, streaming_target)
    try:
        stalled_at = await wait_until_stalled(streaming_target)
        # Socket buffers on both hops hold a few MB; without backpressure the gateway would
        # have swallowed hundreds of MB by now.
        assert 0 < stalled_at < 48 * 1024 * 1024
        for _ in range(20):  # reading again resumes the flow
            await client.next_event()
        await asyncio.sleep(0.2)
        assert streaming_target.bytes_written > stalled_at
    finally:
        await client.ws.close()
        await gateway.gateway.stop()


async def test_target_closing_ends_the_session_with_a_reason(
    tmp_path: Path, http: aiohttp.ClientSession, streaming_target: StreamingVNCServer
) -> None:
    gateway, client = await start_streaming_session(tmp_path, http, streaming_target)
    try:
        await client.next_event()
        streaming_target.drop_connections()
        with pytest.raises(RFBClosed) as closed:
            while True:
                await client.next_event()
        assert closed.value.code == 4005
        assert "closed the session" in closed.value.reason
    finally:
        await gateway.gateway.stop()


async def test_idle_session_is_ended(
    tmp_path: Path, http: aiohttp.ClientSession, streaming_target: StreamingVNCServer
) -> None:
    gateway, client = await start_streaming_session(tmp_path, http, streaming_target, idle_timeout="2s")
    try:
        with pytest.raises(RFBClosed) as closed:
            async with asyncio.timeout(10):
                while True:
                    await client.next_event()
        assert closed.value.code == 4008
        assert "no input" in closed.value.reason
        metrics = await (await http.get(gateway.gateway.metrics_url)).text()
        assert "deskgate_idle_logouts_total 1.0" in metrics
    finally:
        await gateway.gateway.stop()
    # The journal says the operator was warned (after four fifths of the timeout), then why it ended.
    (journal,) = (tmp_path / "recordings").rglob("*.dgj")
    events = [(record.offset_us / 1e6, json.loads(record.payload)) for record in JournalReader(journal)
              if record.kind == RecordKind.EVENT]
    warnings = [t for t, event in events if event["type"] == "idle_warning"]
    assert len(warnings) == 1 and 1.2 <= warnings[0] < 2.0
    assert events[-1][1] == {"type": "session_end", "reason": closed.value.reason}
