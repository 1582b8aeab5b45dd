"""Supervisors watch terminal sessions live (view-only, audited, journaled, the operator told), and terminals
are refused while the node drains or recording storage is nearly full — in the browser and over native SSH.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from gateway.drain import DRAIN
from gateway.web.keys import DISK_SPACE, METRICS
from tests.functional.auth_helpers import PASSWORD, AuthGateway, Clock, cookie_session
from tests.functional.ssh_helpers import kbdint_client, ssh_gateway
from tests.functional.terminal_helpers import closed, open_terminal, read_until, wait_for_recording
from tests.sshd_server import SshdServer

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshdServer]:
    with SshdServer(tmp_path_factory.mktemp("sshd")) as server:
        yield server


async def live_socket(http: aiohttp.ClientSession, gateway: AuthGateway, session_id: str,
                      mode: str = "live") -> aiohttp.ClientWebSocketResponse:
    ws_url = gateway.url.replace("http", "ws", 1)
    return await http.ws_connect(f"{ws_url}/ws/live/{session_id}?mode={mode}", origin=gateway.url)


async def viewer_output(ws: aiohttp.ClientWebSocketResponse, needle: bytes) -> tuple[list[list[int]], bytes]:
    """The sizes and output a live viewer receives, up to ``needle``."""
    sizes, output = [], b""
    async with asyncio.timeout(20):
        while needle not in output:
            message = await ws.receive()
            if message.type == aiohttp.WSMsgType.TEXT:
                sizes.append(json.loads(message.data)["size"])
            elif message.type == aiohttp.WSMsgType.BINARY:
                output += message.data
            else:
                raise AssertionError(f"the view closed ({message.data}, {message.extra}) before {needle!r}")
    return sizes, output


async def test_a_supervisor_watches_a_native_ssh_terminal_live_and_the_operator_is_told(
        sshd: SshdServer, tmp_path: Path) -> None:
    clock = Clock()
    async with ssh_gateway(sshd, tmp_path, clock=clock) as gateway, cookie_session() as sam:
        async with kbdint_client(gateway, "alice+shell-01", [PASSWORD, gateway.code("alice")]) as connection:
            process = await connection.create_process(term_type="xterm", term_size=(90, 20), encoding=None)
            process.stdin.write(b"echo before-$((40+2))\n")
            alice_sees = b""
            async with asyncio.timeout(20):
                while b"before-42" not in alice_sees:
                    alice_sees += await process.stdout.read(4096)

            clock.advance(30)
            assert (await gateway.login(sam, "sam")).status == 200
            sessions = (await (await sam.get(f"{gateway.url}/api/v1/sessions")).json())["sessions"]
            assert [(s["user"], s["target"], s["protocol"]) for s in sessions] == [("alice", "shell-01", "ssh")]
            session_id = sessions[0]["id"]
            page = await sam.get(f"{gateway.url}/live/{session_id}")
            assert page.status == 200 and "live_terminal.js" in await page.text()
            assert "wasm-unsafe-eval" in page.headers["Content-Security-Policy"]

            view = await live_socket(sam, gateway, session_id)
            sizes, recent = await viewer_output(view, b"before-42")  # the recent output first
            assert sizes[0] == [90, 20]
            async with asyncio.timeout(20):
                while b"sam is now viewing this session" not in alice_sees:
                    alice_sees += await process.stdout.read(4096)
            await view.send_bytes(b"echo viewer-typed-$((1+1))\n")  # dropped: nothing reaches the target
            await view.send_str("{\"resize\": [10, 10]}")
            process.stdin.write(b"echo live-$((6*7))\n")
            _, live = await viewer_output(view, b"live-42")
            tile = await live_socket(sam, gateway, session_id, mode="tile")
            lines = json.loads((await tile.receive(timeout=20)).data)["lines"]
            assert "live-42" in lines and len(lines) <= 12
            await tile.close()
            process.stdin.write(b"echo after-$((2+3))\n")
            async with asyncio.timeout(20):
                while b"after-5" not in alice_sees:
                    alice_sees += await process.stdout.read(4096)
            assert b"viewer-typed-2" not in alice_sees
            process.change_terminal_size(100, 30)  # the client's window-change reaches the PTY and the viewer
            process.stdin.write(b"stty size\n")
            sizes, _ = await viewer_output(view, b"30 100")
            assert sizes == [[100, 30]]
            process.stdin.write(b"exit\n")
            code, reason = await closed(view)
            assert code == 4010 and "ended" in reason
        dropped = gateway.gateway.app[METRICS].live_view_dropped_input_total.labels(kind="terminal")._value.get()
        assert dropped == 2

        recording = (await wait_for_recording(sam, gateway, text="live-42"))[0]
        events = await (await sam.get(f"{gateway.url}/api/v1/recordings/{recording['id']}/events")).json()
        viewed = [e for e in events["events"] if e["type"] == "viewed_by"]
        assert [(e["by"], e["mode"]) for e in viewed][:2] == [("sam", "live"), ("sam", "tile")]
        views = [(e.user, e.target, e.outcome) for e in await gateway.audit() if e.action == "session.view"]
        assert ("sam", "alice", "allowed") in views and ("sam", "alice", "ended") in views


async def test_terminals_are_refused_while_the_node_drains_or_the_disk_is_nearly_full(
        sshd: SshdServer, tmp_path: Path) -> None:
    clock = Clock()
    async with ssh_gateway(sshd, tmp_path, clock=clock) as gateway, cookie_session() as alice:
        app = gateway.gateway.app
        assert (await gateway.login(alice, "alice")).status == 200
        app[DRAIN].deadline = clock() + 60
        code, reason = await closed(await open_terminal(alice, gateway, "shell-01"))
        assert code == 4015 and "restarting" in reason
        clock.advance(30)
        async with kbdint_client(gateway, "alice+shell-01", [PASSWORD, gateway.code("alice")]) as connection:
            process = await connection.create_process(term_type="xterm", encoding=None)
            assert b"this gateway node is restarting" in await asyncio.wait_for(process.stdout.read(), 20)
        app[DRAIN].deadline = None

        disk = app[DISK_SPACE]
        disk.usage = lambda path: (100 * 2**30, 100 * 2**30 - 2**20, 2**20)
        await disk.refresh(gateway.config)
        code, reason = await closed(await open_terminal(alice, gateway, "shell-01"))
        assert code == 4016 and "nearly full" in reason
        opened = [(e.outcome, e.detail["channel"]) for e in await gateway.audit() if e.action == "session.open"]
        assert opened == [("draining", "web"), ("draining", "ssh"), ("disk_full", "web")]
        assert await gateway.metric(alice, 'deskgate_sessions_refused_total{reason="draining"}') == 2
        assert await gateway.metric(alice, 'deskgate_sessions_total{outcome="disk_full",protocol="ssh"}') == 1

        disk.usage = lambda path: (100 * 2**30, 0, 100 * 2**30)
        await disk.refresh(gateway.config)
        ws = await open_terminal(alice, gateway, "shell-01")
        await ws.send_bytes(b"echo open-$((3*3))\n")
        await read_until(ws, b"open-9")
        await ws.close()
