"""Web sessions on a real gateway: fixation, expiry on an injected clock, logout and disable ending desktops,
CSRF, cookie flags (plain and TLS), security headers, and the brute-force throttle."""

from __future__ import annotations

import asyncio
import ssl
from http.cookies import SimpleCookie
from pathlib import Path

import aiohttp
import pytest

from auth.websession import EXPIRED_ABSOLUTE
from gateway.demo import XvncDesktop
from gateway.rfb.messages import KeyEvent
from gateway.web.auth_context import REVOCATION_CHECK_INTERVAL
from tests.functional.auth_helpers import (
    AuthGateway,
    Clock,
    auth_gateway,
    cookie_session,
    deskgate,
    restore_logging,  # noqa: F401  (a fixture)
)
from tests.ldap_server import write_ca, write_server_certificate
from tests.rfbclient import RFBClosed, WebSocketRFBClient

pytestmark = pytest.mark.functional


async def open_desktop(http: aiohttp.ClientSession, gateway: AuthGateway) -> WebSocketRFBClient:
    ws = await http.ws_connect(f"{gateway.url.replace('http', 'ws', 1)}/ws/vnc/desk-01", protocols=["binary"],
                               origin=gateway.url, timeout=aiohttp.ClientWSTimeout(ws_close=5))
    client = WebSocketRFBClient(ws)
    await client.handshake()
    await client.send(KeyEvent(True, 0xFFE1), KeyEvent(False, 0xFFE1))
    return client


async def closed_with(client: WebSocketRFBClient, within: float) -> RFBClosed:
    with pytest.raises(RFBClosed) as closed:
        async with asyncio.timeout(within):
            while True:
                await client._receive()
    return closed.value


def set_cookie(response: aiohttp.ClientResponse) -> SimpleCookie:
    cookie: SimpleCookie = SimpleCookie()
    for header in response.headers.getall("Set-Cookie", []):
        cookie.load(header)
    return cookie


async def token_of(response: aiohttp.ClientResponse) -> str:
    token: str = (await response.json())["csrf_token"]
    return token


# -- fixation and expiry ------------------------------------------------------------------------


async def test_login_issues_a_new_id_and_a_planted_one_is_worthless(tmp_path: Path) -> None:
    async with auth_gateway(tmp_path) as gateway, cookie_session() as http:
        http.cookie_jar.update_cookies({"deskgate": "planted-by-an-attacker"})
        assert (await http.get(f"{gateway.url}/api/v1/targets")).status == 401
        first = await gateway.login(http, "alice")
        first_id = set_cookie(first)["deskgate"].value
        assert first_id != "planted-by-an-attacker" and len(first_id) >= 43
        second = await gateway.login(http, "alice", code=gateway.code("alice", 1))
        second_id = set_cookie(second)["deskgate"].value
        assert second_id != first_id
        async with cookie_session() as replay:
            replay.cookie_jar.update_cookies({"deskgate": first_id})
            assert (await replay.get(f"{gateway.url}/api/v1/targets")).status == 401  # ended by the new login
        assert (await http.get(f"{gateway.url}/api/v1/targets")).status == 200


async def test_idle_and_absolute_expiry_on_the_gateways_clock(tmp_path: Path) -> None:
    clock = Clock()
    timeouts = {"auth": {"web_session": {"idle_timeout": "10m", "absolute_timeout": "1h"}}}
    async with auth_gateway(tmp_path, timeouts, clock=clock) as gateway, cookie_session() as http:
        await gateway.login(http, "alice")
        for _ in range(5):  # busy every 9m59s: idle never strikes
            clock.advance(599)
            assert (await http.get(f"{gateway.url}/api/v1/targets")).status == 200
        clock.advance(600)
        assert (await http.get(f"{gateway.url}/api/v1/targets")).status == 401

        await gateway.login(http, "alice", code=gateway.code("alice"))
        for _ in range(6):
            clock.advance(590)
            assert (await http.get(f"{gateway.url}/api/v1/session")).status == 200
        clock.advance(60)  # 3600 s after login, however busy
        assert (await http.get(f"{gateway.url}/api/v1/session")).status == 401


async def test_an_open_desktop_keeps_the_sign_in_alive_until_its_absolute_expiry(
        tmp_path: Path, desktop: XvncDesktop) -> None:
    clock = Clock()
    timeouts = {"auth": {"web_session": {"idle_timeout": "10m", "absolute_timeout": "15m"}}}
    async with auth_gateway(tmp_path, timeouts, clock=clock, desktop_port=desktop.port) as gateway, \
            cookie_session() as http:
        await gateway.login(http, "alice")
        client = await open_desktop(http, gateway)
        for step in (590, 300):  # the page is quiet for 890 s, but the desktop is in use
            clock.advance(step)
            await asyncio.sleep(REVOCATION_CHECK_INTERVAL + 0.5)
            assert not client.ws.closed
        clock.advance(20)  # 910 s after login
        closed = await closed_with(client, within=REVOCATION_CHECK_INTERVAL + 3)
        assert closed.code == 4010 and EXPIRED_ABSOLUTE in closed.reason
        assert (await http.get(f"{gateway.url}/api/v1/targets")).status == 401


# -- logout and disable end every session of the user ------------------------------------------------


async def test_logout_ends_every_session_of_the_user_and_their_desktops(tmp_path: Path,
                                                                     desktop: XvncDesktop) -> None:
    async with auth_gateway(tmp_path, desktop_port=desktop.port) as gateway, cookie_session() as laptop, \
            cookie_session() as office:
        token = await token_of(await gateway.login(laptop, "alice"))
        await gateway.login(office, "alice", code=gateway.code("alice", 1))
        client = await open_desktop(office, gateway)
        async with cookie_session() as bystander:
            await gateway.login(bystander, "mallory")  # someone else's session is left alone
            logout = await laptop.post(f"{gateway.url}/api/v1/logout", headers={"X-CSRF-Token": token})
            assert logout.status == 200
            closed = await closed_with(client, within=5)
            assert closed.code == 4010 and "you signed out" in closed.reason
            assert (await laptop.get(f"{gateway.url}/api/v1/targets")).status == 401
            assert (await bystander.get(f"{gateway.url}/api/v1/targets")).status == 200
        (event,) = [event for event in await gateway.audit() if event.action == "logout"]
        assert (event.user, event.detail["web_sessions"]) == ("alice", 2)


@pytest.mark.usefixtures("restore_logging")
async def test_disabling_a_user_closes_their_desktop_within_seconds(tmp_path: Path, desktop: XvncDesktop) -> None:
    async with auth_gateway(tmp_path, desktop_port=desktop.port) as gateway, cookie_session() as http:
        await gateway.login(http, "alice")
        client = await open_desktop(http, gateway)
        argv = ["--config", str(gateway.config.path)]
        assert await deskgate("user", "disable", "alice", "--reason", "laptop stolen", *argv) == 0
        closed = await closed_with(client, within=5)  # another process ended the sign-in: the watcher notices
        assert closed.code == 4010 and "your account was disabled" in closed.reason
        refused = await gateway.login(http, "alice", code=gateway.code("alice", 1))
        assert refused.status == 403 and "disabled" in (await refused.json())["error"]
        assert await deskgate("user", "enable", "alice", *argv) == 0
        assert (await gateway.login(http, "alice", code=gateway.code("alice", 1))).status == 200
        actions = [(event.action, event.target) for event in await gateway.audit() if event.action.startswith("user.")]
        assert actions == [("user.disable", "alice"), ("user.enable", "alice")]


# -- CSRF -----------------------------------------------------------------------------------------------


async def test_state_changes_without_the_token_or_from_another_site_are_refused(tmp_path: Path) -> None:
    async with auth_gateway(tmp_path) as gateway, cookie_session() as http:
        token = await token_of(await gateway.login(http, "alice"))
        logout = f"{gateway.url}/api/v1/logout"
        for headers in ({}, {"X-CSRF-Token": "not-the-token"},
                        {"X-CSRF-Token": token, "Origin": "https://evil.example"},
                        {"X-CSRF-Token": token, "Sec-Fetch-Site": "cross-site"},
                        {"X-CSRF-Token": token, "Sec-Fetch-Site": "same-site"}):
            refused = await http.post(logout, headers=headers)
            assert refused.status == 403, headers
        assert (await http.get(f"{gateway.url}/api/v1/targets")).status == 200  # still signed in
        session = await (await http.get(f"{gateway.url}/api/v1/session")).json()
        assert session["csrf_token"] == token
        ok = await http.post(logout, headers={"X-CSRF-Token": token, "Origin": gateway.url,
                                              "Sec-Fetch-Site": "same-origin"})
        assert ok.status == 200


async def test_a_cross_site_login_cannot_be_sent(tmp_path: Path) -> None:
    async with auth_gateway(tmp_path) as gateway, cookie_session() as http:
        body = f'{{"username": "alice", "password": "x", "totp": "{gateway.code("alice")}"}}'
        # What an HTML form on another site can send: a "simple" content type.
        for content_type in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data"):
            refused = await http.post(f"{gateway.url}/api/v1/login", data=body,
                                      headers={"Content-Type": content_type})
            assert refused.status == 415, content_type
        assert (await gateway.login(http, "alice", Origin="https://evil.example")).status == 403
        assert (await gateway.login(http, "alice", **{"Sec-Fetch-Site": "cross-site"})).status == 403


# -- cookie flags and headers -------------------------------------------------------------------------------


async def test_cookie_flags_and_security_headers(tmp_path: Path) -> None:
    async with auth_gateway(tmp_path) as gateway, cookie_session() as http:
        login = await gateway.login(http, "alice")
        morsel = set_cookie(login)["deskgate"]
        assert morsel["httponly"] and morsel["samesite"] == "Strict" and morsel["path"] == "/"
        assert not morsel["domain"] and not morsel["secure"]  # plain HTTP: loopback only (config refuses more)
        for path in ("/", "/login", "/api/v1/session", "/api/v1/targets", "/enroll"):
            response = await http.get(f"{gateway.url}{path}", allow_redirects=False)
            csp = response.headers["Content-Security-Policy"]
            assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
            assert response.headers["X-Frame-Options"] == "DENY"
            assert response.headers["Cache-Control"] == "no-store", path
            assert response.headers["X-Content-Type-Options"] == "nosniff"
            assert response.headers["Referrer-Policy"] == "no-referrer"
        static = await http.get(f"{gateway.url}/static/login.js")
        assert "no-store" not in static.headers.get("Cache-Control", "")


async def test_under_tls_the_cookie_is_host_prefixed_and_secure(tmp_path: Path) -> None:
    ca_path, ca_key, ca_certificate = write_ca(tmp_path, "gateway-ca")
    certificate, key = write_server_certificate(tmp_path, ca_key, ca_certificate)
    tls = {"tls": {"cert": str(certificate), "key": str(key)}}
    client_tls = ssl.create_default_context(cafile=str(ca_path))
    async with auth_gateway(tmp_path, tls) as gateway, \
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=client_tls),
                                  cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        assert gateway.url.startswith("https://")
        login = await gateway.login(http, "alice")
        assert login.status == 200
        morsel = set_cookie(login)["__Host-deskgate"]
        assert morsel["secure"] and morsel["httponly"] and morsel["samesite"] == "Strict"
        assert morsel["path"] == "/" and not morsel["domain"]
        assert login.headers["Strict-Transport-Security"] == "max-age=31536000"
        assert (await http.get(f"{gateway.url}/api/v1/targets")).status == 200  # the browser sends it back


# -- brute force ------------------------------------------------------------------------------------------


async def test_repeated_failures_are_answered_429_with_retry_after(tmp_path: Path) -> None:
    clock = Clock()
    async with auth_gateway(tmp_path, clock=clock) as gateway, cookie_session() as http:
        for _ in range(5):
            assert (await gateway.login(http, "alice", password="guess")).status == 401
        limited = await gateway.login(http, "alice")
        assert limited.status == 429 and limited.headers["Retry-After"] == "1"
        assert "try again in 1 s" in (await limited.json())["error"]
        assert await gateway.metric(
            http, 'deskgate_auth_attempts_total{method="password+totp",result="rate_limited"}') == 1
        clock.advance(1)
        assert (await gateway.login(http, "alice")).status == 200
        reasons = [event.reason for event in await gateway.audit() if event.action == "login"]
        assert reasons == ["wrong username or password"] * 5 + ["rate limited (user)", None]
