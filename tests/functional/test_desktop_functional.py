"""A desktop session through the gateway against a real TigerVNC server.

The client logs in over the API, opens ``/ws/vnc/desk-01`` and must receive, for
each lossless encoding, a framebuffer identical to the server's own screenshot.
"""

from __future__ import annotations

import asyncio
import re

import aiohttp
import numpy as np
import pytest

from gateway.demo import XvncDesktop
from gateway.rfb.messages import Encoding, KeyEvent, PointerEvent
from tests.conftest import DESKTOP_HEIGHT, DESKTOP_WIDTH, GatewayUnderTest
from tests.rfbclient import RFBClosed, WebSocketRFBClient
from tests.xwd import read_xwd, take_screenshot

pytestmark = pytest.mark.functional


async def open_desktop(
    http: aiohttp.ClientSession, gateway: GatewayUnderTest, target: str = "desk-01", origin: str | None = None
) -> WebSocketRFBClient:
    ws = await http.ws_connect(f"{gateway.ws_url}/ws/vnc/{target}", protocols=["binary"],
                               origin=origin or gateway.url, timeout=aiohttp.ClientWSTimeout(ws_close=5))
    return WebSocketRFBClient(ws)


@pytest.mark.parametrize("encoding", [Encoding.ZRLE, Encoding.HEXTILE, Encoding.RAW, Encoding.TIGHT],
                         ids=lambda e: e.name)
async def test_framebuffer_through_gateway_is_the_servers_screen(
    gateway: GatewayUnderTest, http: aiohttp.ClientSession, desktop: XvncDesktop, encoding: Encoding
) -> None:
    assert (await gateway.login(http, "alice")).status == 200
    client = await open_desktop(http, gateway)
    init = await client.handshake()
    assert (init.width, init.height) == (1024, 768)
    assert init.name == b"desk-01"  # the admin's name, never the server's own string

    # Like any viewer, tell the server where our pointer is: TigerVNC draws the cursor into the
    # framebuffer while its pointer position differs from the client's last PointerEvent.
    await client.send(PointerEvent(0, DESKTOP_WIDTH - 1, DESKTOP_HEIGHT - 1))
    pixels = await client.capture([encoding])
    screenshot = read_xwd(take_screenshot(desktop))

    assert encoding in client.encodings_seen
    assert pixels.shape == screenshot.shape
    mismatched = int(np.count_nonzero((pixels != screenshot).any(axis=2)))
    assert mismatched == 0, f"{mismatched} pixels differ from the server's screenshot"
    await client.ws.close()


async def test_the_desktop_sends_zrle_when_the_browser_asks_tight_first(
    gateway: GatewayUnderTest, http: aiohttp.ClientSession
) -> None:
    """noVNC lists Tight first; the gateway puts the target's preferred encoding (ZRLE by default) first."""
    assert (await gateway.login(http, "alice")).status == 200
    client = await open_desktop(http, gateway)
    await client.handshake()
    await client.send(PointerEvent(0, DESKTOP_WIDTH - 1, DESKTOP_HEIGHT - 1))
    await client.capture([Encoding.TIGHT, Encoding.ZRLE, Encoding.RAW])
    assert client.encodings_seen & {Encoding.TIGHT, Encoding.ZRLE} == {Encoding.ZRLE}
    await client.ws.close()


async def test_session_is_counted_in_metrics(gateway: GatewayUnderTest, http: aiohttp.ClientSession) -> None:
    await gateway.login(http, "alice")
    client = await open_desktop(http, gateway)
    await client.handshake()
    await client.capture([Encoding.ZRLE])
    metrics = await (await http.get(gateway.gateway.metrics_url)).text()
    assert 'deskgate_sessions_active{protocol="vnc"} 1.0' in metrics
    await client.ws.close()
    await client.ws.receive()  # let the gateway finish the session

    for _ in range(200):  # the session ends a moment after the socket closes; wait up to 10 s
        metrics = await (await http.get(gateway.gateway.metrics_url)).text()
        if 'deskgate_sessions_total{outcome="closed",protocol="vnc"} 1.0' in metrics:
            break
        await asyncio.sleep(0.05)
    assert 'deskgate_sessions_active{protocol="vnc"} 0.0' in metrics
    assert 'deskgate_sessions_total{outcome="closed",protocol="vnc"} 1.0' in metrics
    to_client = [line for line in metrics.splitlines()
                 if line.startswith('deskgate_proxy_bytes_total{direction="to_client",protocol="vnc"}')]
    assert float(to_client[0].split()[-1]) > 1000  # a whole (well-compressed) screen went through
    assert 'deskgate_auth_attempts_total{method="password+totp",result="ok"} 1.0' in metrics
    assert re.search(r'deskgate_build_info\{[^}]*rfb_framer="(compiled|pure)"', metrics)
    assert re.search(r'deskgate_build_info\{[^}]*version="', metrics)


async def ws_refusal_status(http: aiohttp.ClientSession, url: str, origin: str | None) -> int:
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await http.ws_connect(url, protocols=["binary"], origin=origin)
    return refused.value.status


async def test_no_cookie_is_refused(gateway: GatewayUnderTest, http: aiohttp.ClientSession) -> None:
    assert await ws_refusal_status(http, f"{gateway.ws_url}/ws/vnc/desk-01", gateway.url) == 401


async def test_foreign_origin_is_refused(gateway: GatewayUnderTest, http: aiohttp.ClientSession) -> None:
    await gateway.login(http, "alice")
    url = f"{gateway.ws_url}/ws/vnc/desk-01"
    assert await ws_refusal_status(http, url, "https://evil.example") == 403
    assert await ws_refusal_status(http, url, None) == 403


async def test_target_not_in_config_is_refused(gateway: GatewayUnderTest, http: aiohttp.ClientSession) -> None:
    await gateway.login(http, "alice")
    assert await ws_refusal_status(http, f"{gateway.ws_url}/ws/vnc/10.0.0.1:5900", gateway.url) == 404
    assert await ws_refusal_status(http, f"{gateway.ws_url}/ws/vnc/nowhere", gateway.url) == 404


async def test_target_the_policy_does_not_allow_is_refused(
    gateway: GatewayUnderTest, http: aiohttp.ClientSession
) -> None:
    await gateway.login(http, "alice")
    assert await ws_refusal_status(http, f"{gateway.ws_url}/ws/vnc/secret-desk", gateway.url) == 403
    metrics = await (await http.get(gateway.gateway.metrics_url)).text()
    assert "deskgate_policy_denied_total 1.0" in metrics


async def test_user_without_a_policy_sees_and_opens_nothing(
    gateway: GatewayUnderTest, http: aiohttp.ClientSession
) -> None:
    assert (await gateway.login(http, "mallory")).status == 200
    targets = await (await http.get(f"{gateway.url}/api/v1/targets")).json()
    assert targets["targets"] == []
    assert await ws_refusal_status(http, f"{gateway.ws_url}/ws/vnc/desk-01", gateway.url) == 403


async def test_targets_lists_what_the_policy_allows(gateway: GatewayUnderTest, http: aiohttp.ClientSession) -> None:
    assert (await http.get(f"{gateway.url}/api/v1/targets")).status == 401
    await gateway.login(http, "alice")
    targets = await (await http.get(f"{gateway.url}/api/v1/targets")).json()
    assert [t["name"] for t in targets["targets"]] == ["desk-01", "desk-02"]
    assert [t["clipboard"] for t in targets["targets"]] == ["off", "off"]  # the policy's, for the desktop page


async def test_wrong_password_and_wrong_totp_are_refused(
    gateway: GatewayUnderTest, http: aiohttp.ClientSession
) -> None:
    alice = gateway.users["alice"]
    login = f"{gateway.url}/api/v1/login"
    wrong_password = await http.post(login, json={"username": "alice", "password": "nope", "totp": alice.code()})
    assert wrong_password.status == 401
    assert "wrong username or password" in (await wrong_password.json())["error"]
    wrong_code = alice.wrong_code()
    wrong_totp = await http.post(login, json={"username": "alice", "password": alice.password, "totp": wrong_code})
    assert wrong_totp.status == 401
    assert "code" in (await wrong_totp.json())["error"]
    assert not http.cookie_jar.filter_cookies(gateway.url)  # type: ignore[arg-type]
    assert (await http.get(f"{gateway.url}/api/v1/targets")).status == 401


async def test_unreachable_target_is_explained_to_the_browser(
    gateway: GatewayUnderTest, http: aiohttp.ClientSession
) -> None:
    await gateway.login(http, "alice")
    client = await open_desktop(http, gateway, "desk-02")
    with pytest.raises(Exception, match="unreachable"):
        await client.handshake()
    with pytest.raises(RFBClosed) as closed:
        await client._receive()
    assert closed.value.code == 4004


async def test_broken_browser_message_ends_only_that_session(
    gateway: GatewayUnderTest, http: aiohttp.ClientSession
) -> None:
    await gateway.login(http, "alice")
    client = await open_desktop(http, gateway)
    await client.handshake()
    await client.ws.send_bytes(bytes([77, 0, 0, 0]))  # no such client message
    with pytest.raises(RFBClosed) as closed:
        while True:
            await client._receive()
    assert closed.value.code == 1008
    healthy = await open_desktop(http, gateway)
    await healthy.handshake()
    assert (await healthy.capture([Encoding.ZRLE])).shape == (768, 1024, 3)
    await healthy.ws.close()


async def test_logout_closes_the_live_desktop(gateway: GatewayUnderTest, http: aiohttp.ClientSession) -> None:
    token = (await (await gateway.login(http, "alice")).json())["csrf_token"]
    client = await open_desktop(http, gateway)
    await client.handshake()
    await client.send(KeyEvent(True, 0xFFE1), KeyEvent(False, 0xFFE1))  # shift: harmless input
    logout = await http.post(f"{gateway.url}/api/v1/logout", headers={"Origin": gateway.url, "X-CSRF-Token": token})
    assert logout.status == 200
    with pytest.raises(RFBClosed) as closed:
        while True:
            await client._receive()
    assert closed.value.code == 4010
    assert "you signed out" in closed.value.reason
    assert (await http.get(f"{gateway.url}/api/v1/targets")).status == 401
