"""What the supervision tests share: who is who, the policies that say who watches whom, and small clients.

    operators (alice, bob)   watched by supervisors (sam)
    trainees  (tina)         watched by trainers (tess)
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from gateway.rfb.messages import KeyEvent
from tests.rfbclient import RFBClosed, WebSocketRFBClient

USERS = {"alice": ["operators"], "bob": ["operators"], "tina": ["trainees"], "sam": ["supervisors"],
         "tess": ["trainers"]}
LOOPBACK = ["127.0.0.0/8", "::1/128"]
POLICIES: dict[str, Any] = {"targets": {"desk-01": {"max_sessions": None}}, "policies": [  # desk-01: shared
    {"name": "operators", "groups": ["operators", "trainees"], "from": LOOPBACK, "targets": ["desk-*"]},
    {"name": "supervisors", "groups": ["supervisors"], "from": LOOPBACK, "targets": ["desk-01"],
     "watch": ["operators"]},
    {"name": "trainers", "groups": ["trainers"], "from": LOOPBACK, "targets": ["desk-01"], "watch": ["trainees"]},
]}


async def open_desktop(http: aiohttp.ClientSession, url: str) -> WebSocketRFBClient:
    """An operator's desktop on desk-01 through the gateway at ``url``, handshake done."""
    ws = await http.ws_connect(f"{url.replace('http', 'ws', 1)}/ws/vnc/desk-01", protocols=["binary"], origin=url,
                               timeout=aiohttp.ClientWSTimeout(ws_close=5))
    client = WebSocketRFBClient(ws)
    await client.handshake()
    await client.send(KeyEvent(True, 0xFFE1), KeyEvent(False, 0xFFE1))  # some input: the session is in use
    return client


async def closed_with(client: WebSocketRFBClient, within: float) -> RFBClosed:
    """How the gateway closed the desktop's WebSocket, which it must do within ``within`` seconds."""
    with pytest.raises(RFBClosed) as closed:
        async with asyncio.timeout(within):
            while True:
                await client._receive()
    return closed.value


@dataclass
class Event:
    """One server-sent event."""

    event: str
    data: dict[str, Any]
    id: str | None = None


class EventStream:
    """``GET /api/v1/notices`` read as server-sent events."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self.response = response

    @classmethod
    async def open(cls, http: aiohttp.ClientSession, url: str, **headers: str) -> EventStream:
        response = await http.get(f"{url}/api/v1/notices", headers=headers)
        assert response.status == 200, await response.text()
        assert response.headers["Content-Type"] == "text/event-stream; charset=utf-8"
        return cls(response)

    async def next(self, timeout: float = 5.0) -> Event:
        """The next event (comments and ``retry`` lines skipped); EOFError when the stream ends."""
        fields: dict[str, str] = {}
        async with asyncio.timeout(timeout):
            while True:
                line = await self.response.content.readline()
                if not line:
                    raise EOFError("the notice stream ended")
                text = line.decode().rstrip("\n")
                if text == "" and "data" in fields:
                    return Event(fields.get("event", "message"), json.loads(fields["data"]), fields.get("id"))
                name, _, value = text.partition(": ")
                if name in ("event", "data", "id"):
                    fields[name] = value

    async def next_notice(self, timeout: float = 5.0) -> dict[str, Any]:
        while (event := await self.next(timeout)).event != "notice":
            pass
        return event.data

    def close(self) -> None:
        self.response.close()
