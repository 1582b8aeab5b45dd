"""Issue 11's access rules on a real gateway with a real Xvnc desktop: idle and maximum-length endings sign the
operator out, pointer events in place and key repeats are not activity, ``{user}`` targets, ``max_sessions``
with its reason (on one node and across two on one SQLite file, including two opens at once)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.demo import XvncDesktop
from gateway.rfb.messages import KeyEvent, PointerEvent
from gateway.session_watch import CloseCode
from gateway.web.app import RunningGateway, start_gateway
from tests.functional.auth_helpers import AuthGateway, auth_gateway, cookie_session
from tests.functional.supervision_helpers import closed_with
from tests.rfbclient import RFBClosed, WebSocketRFBClient

pytestmark = pytest.mark.functional

OPERATORS = {"alice": ["operators"], "bob": ["operators"]}
LOOPBACK = ["127.0.0.0/8", "::1/128"]
IN_USE = "desk-01 is in use by another operator; choose another desktop or try again later"


async def connect(http: aiohttp.ClientSession, url: str, target: str = "desk-01") -> WebSocketRFBClient:
    ws = await http.ws_connect(f"{url.replace('http', 'ws', 1)}/ws/vnc/{target}", protocols=["binary"], origin=url,
                               timeout=aiohttp.ClientWSTimeout(ws_close=5))
    return WebSocketRFBClient(ws)


async def open_desktop(http: aiohttp.ClientSession, url: str, target: str = "desk-01") -> WebSocketRFBClient:
    client = await connect(http, url, target)
    await client.handshake()
    await client.send(KeyEvent(True, 0xFFE1), KeyEvent(False, 0xFFE1))
    return client


async def signed_in(gateway: AuthGateway, user: str, steps: int = 0) -> aiohttp.ClientSession:
    http = cookie_session()
    response = await gateway.login(http, user, code=gateway.code(user, steps))
    assert response.status == 200, await response.text()
    return http


@pytest.fixture
async def access(tmp_path: Path, desktop: XvncDesktop) -> AsyncIterator[AuthGateway]:
    """Operators may open desk-* and their own desk-{user}; desk-01 is the real desktop, so is desk-alice."""
    changes: dict[str, Any] = {
        "targets": {"desk-alice": {"protocol": "vnc", "host": "127.0.0.1", "port": desktop.port,
                                   "password_file": "desk-01.pass"},
                    "desk-bob": {"protocol": "vnc", "host": "127.0.0.1", "port": desktop.port,
                                 "password_file": "desk-01.pass"}},
        "policies": [
            {"name": "own", "groups": ["operators"], "from": LOOPBACK, "targets": ["desk-{user}"]},
            {"name": "shared", "groups": ["operators"], "from": LOOPBACK, "targets": ["desk-0*"]},
        ],
    }
    async with auth_gateway(tmp_path, changes, desktop_port=desktop.port, users=OPERATORS) as gateway:
        yield gateway


async def test_an_idle_desktop_signs_its_operator_out(tmp_path: Path, desktop: XvncDesktop) -> None:
    """Pointer events in place and a held key's repeats do not keep it alive; afterwards the sign-in is gone."""
    changes = {"policies": [{"name": "operators", "groups": ["operators"], "from": LOOPBACK, "targets": ["desk-*"],
                             "idle_timeout": "2s"}]}
    async with auth_gateway(tmp_path, changes, desktop_port=desktop.port, users=OPERATORS) as gateway:
        async with await signed_in(gateway, "alice") as http:
            client = await open_desktop(http, gateway.url)
            await client.send(PointerEvent(0, 10, 10), KeyEvent(True, 0x61))

            async def jiggle() -> None:
                while True:
                    await asyncio.sleep(0.2)
                    await client.send(PointerEvent(0, 10, 10), KeyEvent(True, 0x61))

            jiggler = asyncio.create_task(jiggle())
            try:
                ended = await closed_with(client, within=10)
            finally:
                jiggler.cancel()
            assert ended.code == CloseCode.IDLE_TIMEOUT
            assert ended.reason == "no input for 2 s: you were signed out for safety; sign in again to continue"
            assert (await http.get(f"{gateway.url}/api/v1/session")).status == 401
            page = await http.get(f"{gateway.url}/desktop/desk-01", allow_redirects=False)
            assert (page.status, page.headers["Location"]) == (302, "/login")
            metric = await gateway.metric(http, 'deskgate_sign_outs_total{reason="idle_timeout"}')
            assert metric == 1.0 and await gateway.metric(http, "deskgate_idle_logouts_total") == 1.0
    logouts = [(e.user, e.target, e.outcome, e.reason) for e in await gateway.audit() if e.action == "logout"]
    assert logouts == [("alice", "desk-01", "idle_timeout", ended.reason)]


async def test_the_maximum_session_length_signs_out_too(tmp_path: Path, desktop: XvncDesktop) -> None:
    changes = {"policies": [{"name": "operators", "groups": ["operators"], "from": LOOPBACK, "targets": ["desk-*"],
                             "max_session": "1s"}]}
    async with auth_gateway(tmp_path, changes, desktop_port=desktop.port, users=OPERATORS) as gateway:
        async with await signed_in(gateway, "alice") as http:
            ended = await closed_with(await open_desktop(http, gateway.url), within=10)
            assert ended.code == CloseCode.MAX_SESSION
            assert (await http.get(f"{gateway.url}/api/v1/session")).status == 401
            assert await gateway.metric(http, 'deskgate_sign_outs_total{reason="max_session"}') == 1.0
    assert [e.outcome for e in await gateway.audit() if e.action == "logout"] == ["max_session"]


async def test_user_targets_reach_only_ones_own_desktop(access: AuthGateway) -> None:
    async with await signed_in(access, "alice") as http:
        listed = await (await http.get(f"{access.url}/api/v1/targets")).json()
        assert [target["name"] for target in listed["targets"]] == ["desk-01", "desk-alice"]
        assert listed["targets"][0]["idle_timeout"] == 900  # the sign-in's, as no policy sets one
        check = await http.get(f"{access.url}/api/v1/targets/desk-bob/check")
        assert check.status == 403
        assert (await check.json())["error"].startswith("you may not open desk-bob from here: no policy allows alice")
        assert (await (await http.get(f"{access.url}/api/v1/targets/desk-alice/check")).json()) == {
            "target": "desk-alice", "available": True}
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await connect(http, access.url, "desk-bob")
        assert refused.value.status == 403
        client = await open_desktop(http, access.url, "desk-alice")
        await client.ws.close()


async def test_a_second_operator_is_refused_with_the_reason(access: AuthGateway) -> None:
    async with await signed_in(access, "alice") as alice, await signed_in(access, "bob") as bob:
        holder = await open_desktop(alice, access.url)
        check = await bob.get(f"{access.url}/api/v1/targets/desk-01/check")
        assert (check.status, (await check.json())["error"]) == (409, IN_USE)
        late = await connect(bob, access.url)  # past the check (two pages at once): refused after the upgrade
        with pytest.raises(RFBClosed) as closed:
            await late.handshake()
        assert (closed.value.code, closed.value.reason) == (CloseCode.IN_USE, IN_USE)
        assert await access.metric(bob, 'deskgate_sessions_refused_total{reason="in_use"}') == 2.0
        await holder.ws.close()
        await free_again(bob, access.url)
    refusals = [(e.user, e.target, e.reason) for e in await access.audit()
                if e.action == "session.open" and e.outcome == "in_use"]
    assert len(refusals) >= 2 and set(refusals) == {("bob", "desk-01", IN_USE)}  # the check's and the socket's


async def free_again(http: aiohttp.ClientSession, url: str) -> None:
    """Wait until desk-01 is free (its session's row is withdrawn as the session closes)."""
    async with asyncio.timeout(10):
        while (await http.get(f"{url}/api/v1/targets/desk-01/check")).status != 200:
            await asyncio.sleep(0.05)


async def outcome(client: WebSocketRFBClient) -> int | None:
    """None when the desktop opened, else its close code."""
    try:
        await client.handshake()
    except RFBClosed as closed:
        return closed.code
    return None


async def test_two_nodes_on_one_database_count_together_and_one_of_two_opens_wins(access: AuthGateway) -> None:
    second: RunningGateway = await start_gateway(access.config)
    try:
        async with await signed_in(access, "alice") as alice, await signed_in(access, "bob") as bob:
            node_b = second.url
            for _ in range(3):  # at once, on two nodes
                clients = await asyncio.gather(connect(alice, access.url), connect(bob, node_b))
                outcomes = await asyncio.gather(*(outcome(client) for client in clients))
                assert sorted(outcomes, key=str) == sorted([None, CloseCode.IN_USE], key=str), outcomes
                for client in clients:
                    await client.ws.close()
                await free_again(alice, node_b)
    finally:
        await second.stop()
