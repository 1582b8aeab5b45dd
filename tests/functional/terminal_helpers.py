"""What the terminal tests share: a gateway with ssh targets on a real sshd, and a terminal WebSocket client."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncssh

from tests.functional.auth_helpers import AuthGateway, auth_gateway
from tests.sshd_server import SshdServer

LOOPBACK = ["127.0.0.0/8", "::1/128"]
TERMINAL_USERS = {"alice": ["operators"], "sam": ["supervisors"]}


def terminal_settings(sshd: SshdServer, workdir: Path, extra_targets: dict[str, Any] | None = None,
                      idle_timeout: str = "15m", record_input: str = "full") -> dict[str, Any]:
    """Config changes: shell-01 on ``sshd``, shell-idle (a 2 s idle timeout), policies for alice and sam."""
    workdir.mkdir(parents=True, exist_ok=True)
    wrong_hosts = workdir / "wrong_known_hosts"
    other = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode().split()
    wrong_hosts.write_text(f"[127.0.0.1]:{sshd.port} {other[0]} {other[1]}\n")
    return {
        "targets": {
            "shell-01": sshd.target(),
            "shell-idle": sshd.target(),
            "shell-evil": sshd.target(known_hosts=str(wrong_hosts)),
            **(extra_targets or {}),
        },
        "policies": [
            {"name": "idle", "groups": ["operators"], "from": LOOPBACK, "targets": ["shell-idle"],
             "idle_timeout": "2s"},
            {"name": "operators", "groups": ["operators"], "from": LOOPBACK, "targets": ["shell-*", "desk-*"],
             "idle_timeout": idle_timeout, "record_input": record_input},
            {"name": "supervisors", "groups": ["supervisors"], "from": LOOPBACK, "targets": ["desk-01"],
             "watch": ["operators"], "recordings": "all"},
        ],
    }


@contextlib.asynccontextmanager
async def terminal_gateway(sshd: SshdServer, workdir: Path, **options: Any) -> AsyncIterator[AuthGateway]:
    async with auth_gateway(workdir, terminal_settings(sshd, workdir, **options), users=TERMINAL_USERS) as gateway:
        yield gateway


async def open_terminal(http: aiohttp.ClientSession, gateway: AuthGateway, target: str,
                        size: tuple[int, int] = (100, 30)) -> aiohttp.ClientWebSocketResponse:
    """A terminal WebSocket to ``target`` that has said its size."""
    ws_url = gateway.url.replace("http", "ws", 1)
    ws = await http.ws_connect(f"{ws_url}/ws/ssh/{target}", origin=gateway.url)
    await ws.send_str(json.dumps({"resize": list(size)}))
    return ws


async def read_until(ws: aiohttp.ClientWebSocketResponse, needle: bytes, timeout: float = 20.0) -> bytes:
    """The terminal's output up to and including ``needle``; AssertionError if the session closes first."""
    output = b""
    async with asyncio.timeout(timeout):
        while needle not in output:
            message = await ws.receive()
            if message.type != aiohttp.WSMsgType.BINARY:
                raise AssertionError(f"the terminal closed ({message.data}: {message.extra}) before {needle!r}; "
                                     f"output: {output.decode(errors='replace')!r}")
            output += message.data
    return output


async def closed(ws: aiohttp.ClientWebSocketResponse, timeout: float = 20.0) -> tuple[int, str]:
    """Read to the close frame: its code and reason."""
    async with asyncio.timeout(timeout):
        while True:
            message = await ws.receive()
            if message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
                return int(ws.close_code or 0), str(message.extra or "")


async def wait_for_recording(http: aiohttp.ClientSession, gateway: AuthGateway, **filters: str) -> list[Any]:
    """The recordings a search finds once the gateway has indexed them (sam searches)."""
    async with asyncio.timeout(20):
        while True:
            response = await http.get(f"{gateway.url}/api/v1/recordings", params=filters)
            assert response.status == 200, await response.text()
            found = (await response.json())["recordings"]
            if found:
                return list(found)
            await asyncio.sleep(0.2)
