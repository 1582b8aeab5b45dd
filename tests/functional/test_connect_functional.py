"""``deskgate connect`` (a subprocess) bridges a Python RFB client on a loopback port to a real Xvnc desktop.

The framebuffer through the bridge is the server's screen; a second viewer is refused while one
is active; the gateway ending the session ends the bridge with the reason; a non-loopback
``--listen`` and a wrong TOTP code are refused.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import numpy as np
import pytest

from gateway.demo import XvncDesktop
from gateway.rfb.messages import Encoding, PointerEvent
from gateway.web.keys import LIVE_SESSIONS
from tests.conftest import DESKTOP_HEIGHT, DESKTOP_WIDTH
from tests.functional.auth_helpers import PASSWORD, AuthGateway, auth_gateway, free_port
from tests.rfbclient import WebSocketRFBClient
from tests.xwd import read_xwd, take_screenshot

pytestmark = [pytest.mark.functional, pytest.mark.timeout(120)]

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class _Message:
    type: aiohttp.WSMsgType
    data: bytes = b""
    extra: str = ""


class TcpViewer:
    """A TCP stream that looks like the WebSocket :class:`WebSocketRFBClient` drives (a native viewer)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.close_code: int | None = None

    async def receive(self, timeout: float = 10.0) -> _Message:
        data = await asyncio.wait_for(self.reader.read(65536), timeout)
        return _Message(aiohttp.WSMsgType.BINARY, data) if data else _Message(aiohttp.WSMsgType.CLOSED)

    async def send_bytes(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def close(self) -> None:
        self.writer.close()


async def start_connect(gateway: AuthGateway, port: int, code: str, listen: str | None = None
                        ) -> asyncio.subprocess.Process:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway.cli", "connect", f"{gateway.url}/desktop/desk-01",
        "--listen", listen or f"127.0.0.1:{port}", "--user", "alice", "--totp", code, cwd=ROOT,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    assert process.stdin is not None
    process.stdin.write(f"{PASSWORD}\n".encode())
    await process.stdin.drain()
    process.stdin.close()
    return process


@pytest.fixture
async def gateway(desktop: XvncDesktop, tmp_path: Path) -> AsyncIterator[AuthGateway]:
    async with auth_gateway(tmp_path, desktop_port=desktop.port) as running:
        yield running


async def test_a_native_viewer_sees_the_desktop_one_at_a_time_until_the_gateway_ends_it(
        gateway: AuthGateway, desktop: XvncDesktop) -> None:
    port = free_port()
    process = await start_connect(gateway, port, gateway.code("alice"))
    try:
        assert process.stdout is not None and process.stderr is not None
        line = await asyncio.wait_for(process.stdout.readline(), 30)
        assert f"127.0.0.1:{port}" in line.decode(), line + await process.stderr.read()
        viewer = TcpViewer(*await asyncio.open_connection("127.0.0.1", port))
        client = WebSocketRFBClient(viewer)  # type: ignore[arg-type]
        init = await client.handshake()
        assert (init.width, init.height) == (DESKTOP_WIDTH, DESKTOP_HEIGHT)
        await client.send(PointerEvent(0, DESKTOP_WIDTH - 1, DESKTOP_HEIGHT - 1))
        pixels = await client.capture([Encoding.ZRLE])
        screenshot = read_xwd(take_screenshot(desktop))
        mismatched = int(np.count_nonzero((pixels != screenshot).any(axis=2)))
        assert mismatched == 0, f"{mismatched} pixels differ from the server's screenshot"

        second_reader, second_writer = await asyncio.open_connection("127.0.0.1", port)
        assert await asyncio.wait_for(second_reader.read(100), 10) == b""  # refused: closed at once
        second_writer.close()
        await second_writer.wait_closed()

        registry = gateway.gateway.app[LIVE_SESSIONS]
        [live] = list(registry)
        assert registry.terminate(live.id, "ended by the test")
        await asyncio.wait_for(viewer.reader.read(), 10)  # returns at EOF: the bridge closed the viewer
        viewer.writer.close()
        await viewer.writer.wait_closed()
        status = await asyncio.wait_for(process.wait(), 20)
        error = (await process.stderr.read()).decode()
        assert "ended by the test" in error and status == 1, error
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_non_loopback_listen_and_a_wrong_code_are_refused(gateway: AuthGateway) -> None:
    process = await start_connect(gateway, 0, gateway.code("alice"), listen="0.0.0.0:5999")
    _, error = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 1 and b"loopback address only" in error
    process = await start_connect(gateway, free_port(), "000000")
    _, error = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 1 and b"sign-in refused (401)" in error, error
