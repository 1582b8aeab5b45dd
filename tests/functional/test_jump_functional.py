"""Targets reached through an SSH jump host (``via:``): a real OpenSSH sshd that allows TCP forwarding.

A real Xvnc desktop through the jump host is pixel-for-pixel the server's screen; a terminal and a
supervisor's live view go through it too, all on one shared jump connection; a jump host that is
down or whose key is unknown refuses the session with a message naming it; a dropped jump
connection is replaced, an idle one closed; the admin console's reachability check goes through
the jump host.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncssh
import numpy as np
import pytest

from base.metrics import Metrics
from gateway.config import load_config
from gateway.demo import XvncDesktop
from gateway.errors import TargetRefused
from gateway.reach import JumpHosts, SshEndpoint, open_tcp
from gateway.rfb.messages import Encoding, PointerEvent
from gateway.web.admin_views import probe_all
from tests.conftest import DESKTOP_HEIGHT, DESKTOP_WIDTH
from tests.functional.auth_helpers import AuthGateway, auth_gateway, cookie_session, free_port, write_config
from tests.functional.terminal_helpers import closed, open_terminal, read_until
from tests.functional.test_terminal_functional import audited, login
from tests.rfbclient import RFBClosed, WebSocketRFBClient
from tests.sshd_server import SshdServer
from tests.xwd import read_xwd, take_screenshot

pytestmark = [pytest.mark.functional, pytest.mark.timeout(120)]

LOOPBACK = ["127.0.0.0/8", "::1/128"]
USERS = {"alice": ["operators"], "sam": ["supervisors"]}


@pytest.fixture(scope="module")
def jump(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshdServer]:
    with SshdServer(tmp_path_factory.mktemp("jump"), tcp_forwarding=True) as server:
        yield server


def jump_settings(jump: SshdServer, desktop: XvncDesktop, workdir: Path) -> dict[str, Any]:
    workdir.mkdir(parents=True, exist_ok=True)
    wrong_hosts = workdir / "wrong_known_hosts"
    other = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode().split()
    wrong_hosts.write_text(f"[127.0.0.1]:{jump.port} {other[0]} {other[1]}\n")
    desk = {"protocol": "vnc", "host": "127.0.0.1", "port": desktop.port, "password_file": str(desktop.password_file)}
    return {
        "targets": {
            "jump-01": jump.target(),
            "jump-down": jump.target(port=free_port()),
            "jump-evil": jump.target(known_hosts=str(wrong_hosts)),
            "desk-01": {**desk, "via": "jump-01"},
            "desk-down": {**desk, "via": "jump-down"},
            "desk-evil": {**desk, "via": "jump-evil"},
            "shell-01": jump.target(via="jump-01"),
            "shell-evil": jump.target(via="jump-evil"),
        },
        "policies": [{"name": "operators", "groups": ["operators"], "from": LOOPBACK, "targets": ["desk-*", "shell-*"]},
                     {"name": "supervisors", "groups": ["supervisors"], "from": LOOPBACK, "targets": ["desk-01"],
                      "watch": ["operators"]}],
    }


async def open_desktop(http: aiohttp.ClientSession, gateway: AuthGateway, target: str) -> WebSocketRFBClient:
    ws_url = gateway.url.replace("http", "ws", 1)
    ws = await http.ws_connect(f"{ws_url}/ws/vnc/{target}", protocols=["binary"], origin=gateway.url,
                               timeout=aiohttp.ClientWSTimeout(ws_close=5))
    return WebSocketRFBClient(ws)


async def test_desktop_and_terminal_through_one_shared_jump_connection(
        jump: SshdServer, desktop: XvncDesktop, tmp_path: Path) -> None:
    async with (auth_gateway(tmp_path, jump_settings(jump, desktop, tmp_path), users=USERS) as gateway,
                cookie_session() as http, cookie_session() as sam):
        await login(http, gateway, "alice")
        client = await open_desktop(http, gateway, "desk-01")
        init = await client.handshake()
        assert (init.width, init.height) == (DESKTOP_WIDTH, DESKTOP_HEIGHT)
        await client.send(PointerEvent(0, DESKTOP_WIDTH - 1, DESKTOP_HEIGHT - 1))
        pixels = await client.capture([Encoding.ZRLE])
        screenshot = read_xwd(take_screenshot(desktop))
        assert pixels.shape == screenshot.shape
        mismatched = int(np.count_nonzero((pixels != screenshot).any(axis=2)))
        assert mismatched == 0, f"{mismatched} pixels differ from the server's screenshot"

        await login(sam, gateway, "sam")  # a supervisor's live view reaches the desktop through the jump host too
        [session] = (await (await sam.get(f"{gateway.url}/api/v1/sessions")).json())["sessions"]
        live = await sam.ws_connect(f"{gateway.url.replace('http', 'ws', 1)}/ws/live/{session['id']}",
                                    protocols=["binary"], origin=gateway.url)
        viewer = WebSocketRFBClient(live)
        assert (await viewer.handshake()).name == b"desk-01"
        assert (await viewer.capture([Encoding.ZRLE])).shape == screenshot.shape
        await live.close()
        await client.ws.close()

        ws = await open_terminal(http, gateway, "shell-01")
        await ws.send_bytes(b"echo through-$((6*7))\n")
        await read_until(ws, b"through-42")
        await ws.send_bytes(b"exit\n")
        code, _ = await closed(ws)
        assert code == 4005
        assert await gateway.metric(http, "deskgate_jump_host_connections_total ") == 1.0  # one, shared


async def test_jump_host_down_or_with_an_unknown_key_refuses_with_a_clear_error(
        jump: SshdServer, desktop: XvncDesktop, tmp_path: Path) -> None:
    async with auth_gateway(tmp_path, jump_settings(jump, desktop, tmp_path)) as gateway, cookie_session() as http:
        await login(http, gateway, "alice")
        client = await open_desktop(http, gateway, "desk-down")
        with pytest.raises(Exception, match="cannot open desk-down: jump host jump-down is unreachable"):
            await client.handshake()
        with pytest.raises(RFBClosed) as refused:
            await client._receive()
        assert refused.value.code == 4004

        client = await open_desktop(http, gateway, "desk-evil")
        with pytest.raises(Exception, match="jump host jump-evil did not prove its identity"):
            await client.handshake()

        ws = await open_terminal(http, gateway, "shell-evil")
        code, reason = await closed(ws)
        assert code == 4014 and "cannot open shell-evil: jump host jump-evil did not prove its identity" in reason
        assert [e.target for e in await audited(gateway, "session.host_key")] == ["shell-evil"]
        assert await gateway.metric(http, 'deskgate_jump_host_failures_total{reason="unreachable"}') == 1.0
        assert await gateway.metric(http, 'deskgate_jump_host_failures_total{reason="host_key"}') == 2.0


async def test_a_dropped_jump_connection_is_replaced_and_an_idle_one_closed(
        jump: SshdServer, desktop: XvncDesktop, tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, jump_settings(jump, desktop, tmp_path)))
    via = SshEndpoint.from_target(config.targets["jump-01"])
    metrics = Metrics()
    jumps = JumpHosts(metrics, idle_timeout=0.2)
    try:
        first = await jumps.connection(via, "desk-01")
        assert await jumps.connection(via, "desk-01") is first  # shared
        first.close()  # dropped while lent
        await first.wait_closed()
        jumps.release(via)
        jumps.release(via)
        stream = await open_tcp("desk-01", "127.0.0.1", desktop.port, via, jumps)
        greeting = b""
        while len(greeting) < 12:
            greeting += await stream.read()
        assert greeting.startswith(b"RFB 003.")  # the target's greeting, through the tunnel
        assert metrics.registry.get_sample_value("deskgate_jump_host_connections_total") == 2.0  # replaced
        second = await jumps.connection(via, "desk-01")
        jumps.release(via)
        assert second is not first and not second.is_closed()  # the channel still holds it
        stream.close()
        await stream.wait_closed()
        await asyncio.wait_for(second.wait_closed(), 10)  # idle: nothing uses it any more
        with pytest.raises(TargetRefused, match="jump host jump-01 cannot reach desk-01"):
            await open_tcp("desk-01", "127.0.0.1", free_port(), via, jumps)
        # The admin console's reachability check goes through the jump host too.
        problems = dict(zip(config.targets, await probe_all(list(config.targets.values()), jumps=jumps), strict=True))
        assert problems["desk-01"] is None and problems["shell-01"] is None
        assert "cannot open desk-down: jump host jump-down is unreachable" in str(problems["desk-down"])
    finally:
        await jumps.close()
