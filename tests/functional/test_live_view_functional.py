"""The live view on a real gateway with a real Xvnc desktop: a second, shared, view-only connection.

A supervisor's viewer sees the operator's screen; nothing it sends reaches the desktop (screen,
pointer position and clipboard unchanged); the operator's session goes on; viewing is audited,
counted, told to the operator and written into the session's journal. And who may not view.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest
from sqlalchemy import insert

from gateway.demo import XvncDesktop
from gateway.rfb.errors import TargetUnavailable
from gateway.rfb.messages import (
    ClientCutText,
    Encoding,
    FramebufferUpdateRequest,
    KeyEvent,
    PointerEvent,
    Screen,
    SetDesktopSize,
)
from gateway.session_directory import SessionDirectory, live_session_events, live_sessions
from gateway.session_watch import CloseCode
from gateway.web.keys import LIVE_SESSIONS, METRICS, SESSION_DIRECTORY, STORE
from tests.functional.auth_helpers import AuthGateway, auth_gateway, cookie_session
from tests.functional.supervision_helpers import POLICIES, USERS, EventStream, closed_with, open_desktop
from tests.rfbclient import RFBClosed, WebSocketRFBClient
from tests.xwd import read_xwd, take_screenshot

pytestmark = pytest.mark.functional


async def sign_in(gateway: AuthGateway, http: aiohttp.ClientSession, user: str) -> None:
    response = await gateway.login(http, user, code=gateway.code(user))
    assert response.status == 200, await response.text()


async def session_id_of(gateway: AuthGateway, http: aiohttp.ClientSession, user: str) -> str:
    response = await http.get(f"{gateway.url}/api/v1/sessions")
    (session,) = [s for s in (await response.json())["sessions"] if s["user"] == user]
    return str(session["id"])


def ws_live(gateway: AuthGateway, http: aiohttp.ClientSession, session_id: str, origin: str | None = None,
            mode: str = "live") -> Any:
    return http.ws_connect(f"{gateway.url.replace('http', 'ws', 1)}/ws/live/{session_id}?mode={mode}",
                           protocols=["binary"], origin=origin or gateway.url,
                           timeout=aiohttp.ClientWSTimeout(ws_close=5))


async def open_viewer(gateway: AuthGateway, http: aiohttp.ClientSession, session_id: str,
                      mode: str = "live") -> WebSocketRFBClient:
    viewer = WebSocketRFBClient(await ws_live(gateway, http, session_id, mode=mode))
    await viewer.handshake()
    return viewer


def x_state(desktop: XvncDesktop) -> tuple[str, str, str]:
    """The pointer's position and both selections of the desktop: what a viewer's input would change."""
    def run(*args: str) -> str:
        return subprocess.run(args, env=desktop.env, capture_output=True, text=True, timeout=10).stdout
    return (run("xdotool", "getmouselocation"), run("xclip", "-o", "-selection", "clipboard"),
            run("xclip", "-o", "-selection", "primary"))


async def until(condition: Any, timeout: float = 15.0) -> Any:
    async with asyncio.timeout(timeout):
        while not (value := await condition()):
            await asyncio.sleep(0.1)
    return value


async def refuse_sharing(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A VNC server that closes on the shared ClientInit (TigerVNC -NeverShared -DisconnectClients=0 while in use)."""
    writer.write(b"RFB 003.008\n")
    await reader.readexactly(12)
    writer.write(bytes((1, 1)))  # security None
    await reader.readexactly(1)
    writer.write(b"\0\0\0\0")
    await reader.readexactly(1)  # ClientInit
    writer.close()


@pytest.fixture
async def gateway(tmp_path: Path, desktop: XvncDesktop) -> AsyncIterator[AuthGateway]:
    """A gateway with desk-01 (the Xvnc desktop) and desk-shy (a target that refuses sharing)."""
    shy = await asyncio.start_server(refuse_sharing, "127.0.0.1", 0)
    targets = {"desk-shy": {"protocol": "vnc", "host": "127.0.0.1", "port": shy.sockets[0].getsockname()[1]}}
    try:
        async with auth_gateway(tmp_path, {**POLICIES, "targets": targets}, desktop_port=desktop.port,
                                users=USERS) as gateway:
            yield gateway
    finally:
        shy.close()
        await shy.wait_closed()


async def insert_session(gateway: AuthGateway, session_id: str, user: str, groups: list[str], target: str) -> None:
    """A live session row as another node would publish it."""
    now = datetime.fromtimestamp(time.time(), UTC)
    async with gateway.gateway.app[STORE].transaction() as connection:
        await connection.execute(insert(live_sessions).values(
            id=session_id, username=user, user_groups=json.dumps(groups), source="10.0.0.9", target=target,
            protocol="vnc", node="other-node", started=now, last_input=now, heartbeat=now, viewers=0))


async def test_a_viewer_sees_the_operators_screen_and_nothing_it_sends_reaches_the_desktop(
        gateway: AuthGateway, desktop: XvncDesktop) -> None:
    async with cookie_session() as operator, cookie_session() as supervisor:
        await sign_in(gateway, operator, "alice")
        notices = await EventStream.open(operator, gateway.url)
        client = await open_desktop(operator, gateway.url)
        await sign_in(gateway, supervisor, "sam")
        session_id = await session_id_of(gateway, supervisor, "alice")

        viewer = await open_viewer(gateway, supervisor, session_id)
        assert viewer.server_init is not None and viewer.server_init.name == b"desk-01"
        started = await notices.next_notice()
        assert (started["type"], started["by"], started["target"]) == ("viewing_started", "sam", "desk-01")
        assert (await (await supervisor.get(f"{gateway.url}/api/v1/sessions")).json())["sessions"][0]["viewers"] == 1
        assert gateway.gateway.app[METRICS].live_viewers._value.get() == 1

        # The same screen as the operator's, and as the desktop's own — but for the bottom-right corner, where
        # the pointer is and TigerVNC may draw the cursor for a client whose own pointer is elsewhere.
        await client.send(PointerEvent(0, 1023, 767))
        operators = (await client.capture([Encoding.RAW]))[:-40, :-40]  # after the move: the same connection
        seen = (await viewer.capture([Encoding.RAW]))[:-40, :-40]
        assert np.array_equal(seen, operators)
        before = await asyncio.to_thread(take_screenshot, desktop)
        assert np.array_equal(seen, read_xwd(before)[:-40, :-40])
        state = await asyncio.to_thread(x_state, desktop)

        # Keys (typed into the xterm they would show), clicks, a move, cut text, a resize: all dropped.
        typed = [message for key in b"echo viewer-was-here\r" for message in (KeyEvent(True, key), KeyEvent(False, key))]
        await viewer.send(*typed, PointerEvent(0, 200, 300), PointerEvent(1, 200, 300), PointerEvent(0, 200, 300),
                          ClientCutText(b"from the viewer"), SetDesktopSize(640, 480, (Screen(1, 0, 0, 640, 480, 0),)))
        await viewer.send(FramebufferUpdateRequest(True, 0, 0, 1024, 768))
        await asyncio.sleep(1.0)  # what the desktop would have shown by now
        assert np.array_equal(read_xwd(await asyncio.to_thread(take_screenshot, desktop)), read_xwd(before))
        assert await asyncio.to_thread(x_state, desktop) == state
        dropped = gateway.gateway.app[METRICS].live_view_dropped_input_total
        assert {kind: dropped.labels(kind=kind)._value.get() for kind in ("key", "pointer", "cut_text", "other")} == {
            "key": len(typed), "pointer": 3, "cut_text": 1, "other": 1}

        # The operator's session goes on beside the viewer, and after it.
        assert np.array_equal((await client.capture([Encoding.RAW]))[:-40, :-40], seen)
        await viewer.ws.close()
        ended = await notices.next_notice()
        assert (ended["type"], ended["by"]) == ("viewing_ended", "sam")
        await until(lambda: _viewers_are(gateway, supervisor, 0))
        assert gateway.gateway.app[METRICS].live_viewers._value.get() == 0
        assert np.array_equal((await client.capture([Encoding.RAW]))[:-40, :-40], seen)
        await client.ws.close()
        notices.close()

        recording = await until(lambda: _first_recording(gateway, supervisor))
        events = (await (await supervisor.get(f"{gateway.url}/api/v1/recordings/{recording['id']}/events")).json())
    viewed = [e for e in events["events"] if e["type"] == "viewed_by"]
    assert [(e["by"], "to" in e) for e in viewed] == [("sam", False), ("sam", True)]
    assert viewed[0]["from"] == viewed[1]["from"] and viewed[1]["from"] <= viewed[1]["to"]

    audit = [(e.user, e.target, e.outcome, e.reason, e.detail.get("session")) for e in await gateway.audit()
             if e.action == "session.view"]
    assert audit == [("sam", "alice", "allowed", "start", session_id),
                     ("sam", "alice", "ended", "the viewer closed the live view", session_id)]


async def _viewers_are(gateway: AuthGateway, http: aiohttp.ClientSession, count: int) -> bool:
    sessions = (await (await http.get(f"{gateway.url}/api/v1/sessions")).json())["sessions"]
    return bool(sessions) and sessions[0]["viewers"] == count


async def _first_recording(gateway: AuthGateway, http: aiohttp.ClientSession) -> dict[str, Any] | None:
    response = await http.get(f"{gateway.url}/api/v1/recordings?user=alice")
    recordings: list[dict[str, Any]] = (await response.json())["recordings"]
    return recordings[0] if recordings else None


async def test_a_tile_ends_with_the_operators_session_and_events_posted_from_another_node_reach_the_journal(
        gateway: AuthGateway) -> None:
    async with cookie_session() as operator, cookie_session() as supervisor:
        await sign_in(gateway, operator, "alice")
        client = await open_desktop(operator, gateway.url)
        await sign_in(gateway, supervisor, "sam")
        session_id = await session_id_of(gateway, supervisor, "alice")
        tile = await open_viewer(gateway, supervisor, session_id, mode="tile")
        frame = await tile.capture((Encoding.TIGHT, -32 + 8, -256 + 1))  # the tile's own levels replace these
        assert frame.shape == (768, 1024, 3) and Encoding.TIGHT in tile.encodings_seen

        # A viewer on another node posts its journal event in the directory; this node's watcher writes it.
        directory = gateway.gateway.app[SESSION_DIRECTORY]
        fields = {"by": "tess", "from": "2026-12-07T03:00:00Z", "to": "2026-12-07T03:01:00Z", "mode": "tile"}
        await directory.post_event(session_id, "viewed_by", fields)
        await until(lambda: _taken(directory, session_id))

        await client.ws.close()
        closed = await closed_with(tile, within=10)
        assert (closed.code, closed.reason) == (CloseCode.TERMINATED, "the operator's session has ended")
        recording = await until(lambda: _first_recording(gateway, supervisor))
        events = (await (await supervisor.get(f"{gateway.url}/api/v1/recordings/{recording['id']}/events")).json())
    viewed = [e for e in events["events"] if e["type"] == "viewed_by"]
    # sam's view outlasted the session: its start has no end in the journal (it lasted to the session's end).
    assert [(e["by"], e["mode"], "to" in e) for e in viewed] == [("sam", "tile", False), ("tess", "tile", True)]
    assert {key: viewed[1][key] for key in fields} == fields
    assert gateway.gateway.app[LIVE_SESSIONS].journal(session_id, "viewed_by", fields) is False  # ended: no journal


async def _taken(directory: SessionDirectory, session_id: str) -> bool:
    """Whether the holding node's watcher has taken the session's posted events."""
    async with directory.store.read() as connection:
        rows = (await connection.execute(live_session_events.select().where(
            live_session_events.c.session_id == session_id))).all()
    return not rows


async def test_who_may_not_view(gateway: AuthGateway) -> None:
    """403 on the page, the API and the WebSocket — alike for a session outside one's watch and an unknown one."""
    async with cookie_session() as alice, cookie_session() as sam, cookie_session() as tess:
        for http, user in ((alice, "alice"), (sam, "sam"), (tess, "tess")):
            await sign_in(gateway, http, user)
        client = await open_desktop(alice, gateway.url)
        session_id = await session_id_of(gateway, sam, "alice")
        # tina's session on another node, which sam (watch: operators) may not see but tess (trainees) may.
        other = "675f0000-0badf00d"
        await insert_session(gateway, other, "tina", ["trainees"], "desk-01")

        async def refused(http: aiohttp.ClientSession, sid: str) -> list[Any]:
            page = await http.get(f"{gateway.url}/live/{sid}", allow_redirects=False)
            api = await http.get(f"{gateway.url}/api/v1/sessions/{sid}")
            return [page.status, api.status, (await api.json())["error"], await ws_refused(http, sid)]

        async def ws_refused(http: aiohttp.ClientSession, sid: str, origin: str | None = None) -> int:
            with pytest.raises(aiohttp.WSServerHandshakeError) as ws:
                await ws_live(gateway, http, sid, origin=origin)
            return ws.value.status

        not_yours = await refused(tess, session_id)
        assert not_yours[0:2] == [403, 403] and not_yours[3] == 403
        assert await refused(sam, other) == not_yours  # another node's session outside the watch
        assert await refused(sam, "675f0000-00000000") == not_yours  # unknown: the same answer
        assert await refused(sam, "not-an-id") == not_yours
        operator = await refused(alice, session_id)
        assert operator[0:2] == [403, 403] and operator[3] == 403 and "no policy lets you watch" in operator[2]
        assert await ws_refused(sam, session_id, origin="https://evil.example") == 403

        # The same supervisor may view from the gateway's own page; tess may see tina's session on the other node.
        assert (await sam.get(f"{gateway.url}/live/{session_id}")).status == 200
        details = await (await tess.get(f"{gateway.url}/api/v1/sessions/{other}")).json()
        assert (details["user"], details["node"]) == ("tina", "other-node")
        assert (await sam.get(f"{gateway.url}/wall")).status == 200
        assert (await alice.get(f"{gateway.url}/wall")).status == 403
        await client.ws.close()

    refused_total = gateway.gateway.app[METRICS].live_view_refused_total
    assert refused_total.labels(reason="foreign_origin")._value.get() == 1
    assert refused_total.labels(reason="unknown_session")._value.get() == 6
    denied = [(e.user, e.outcome) for e in await gateway.audit() if e.action == "session.view"]
    assert ("tess", "denied") in denied and ("alice", "denied") in denied and ("sam", "denied") in denied
    assert not [e for e in denied if e[1] != "denied"]


async def test_a_target_that_refuses_a_shared_connection_is_a_clear_error(gateway: AuthGateway) -> None:
    async with cookie_session() as sam:
        await sign_in(gateway, sam, "sam")
        session_id = "675f0000-0000beef"
        await insert_session(gateway, session_id, "alice", ["operators"], "desk-shy")
        viewer = WebSocketRFBClient(await ws_live(gateway, sam, session_id))
        with pytest.raises(TargetUnavailable, match="desk-shy refused a second, shared connection"):
            await viewer.handshake()
        with pytest.raises(RFBClosed) as closed:
            await viewer._receive()
        assert closed.value.code == CloseCode.TARGET_UNAVAILABLE
    refused = gateway.gateway.app[METRICS].live_view_refused_total.labels(reason="sharing_refused")
    assert refused._value.get() == 1
