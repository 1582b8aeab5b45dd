"""Web sessions on a real gateway: fixation, expiry on an injected clock, logout and disable ending desktops,
CSRF, cookie flags (plain and TLS), security headers, and the brute-force throttle."""

from __future__ import annotations

import asyncio
import ssl
import time
from http.cookies import SimpleCookie
from pathlib import Path

import aiohttp
import pytest

from auth.errors import LOGIN_REFUSED
from auth.websession import EXPIRED_ABSOLUTE
from gateway.demo import XvncDesktop
from gateway.rfb.messages import KeyEvent
from gateway.web.auth_context import REVOCATION_CHECK_INTERVAL
from gateway.web.keys import LOGIN
from tests.functional.auth_helpers import (
    PASSWORD,
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

FLOOD = 60  # concurrent logins from strangers: well beyond the password checks' slots and queue


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
        assert (refused.status, await refused.json()) == (401, {"error": LOGIN_REFUSED})  # no password oracle
        assert (await gateway.audit())[-1].reason == "account disabled"
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


async def test_a_wrong_code_or_a_disabled_account_is_answered_like_a_wrong_password(tmp_path: Path) -> None:
    async with auth_gateway(tmp_path) as gateway, cookie_session() as http:
        used = gateway.code("alice")
        assert (await gateway.login(http, "alice", code=used)).status == 200
        checks = 'deskgate_auth_duration_seconds_count{backend="local"}'
        answers, checked = [], []
        for password, code in (("guess", gateway.code("alice", 1)), (PASSWORD, gateway.code("alice", 3)),
                               (PASSWORD, used), (PASSWORD, gateway.code("alice", 1))):
            if code == gateway.code("alice", 1) and password == PASSWORD:
                await gateway.gateway.app[LOGIN].disabled.disable("alice", "admin", "left")
            before = await gateway.metric(http, checks) or 0
            refused = await gateway.login(http, "alice", password, code)
            answers.append((refused.status, await refused.json(), "Retry-After" in refused.headers))
            checked.append((await gateway.metric(http, checks) or 0) - before)
        assert answers == [(401, {"error": LOGIN_REFUSED}, False)] * 4
        assert checked == [1] * 4  # each answered after the one password check, as a wrong password is
        reasons = [event.reason for event in await gateway.audit() if event.action == "login"][1:]
        assert reasons == ["wrong username or password", "wrong authenticator code",
                           "authenticator code already used", "account disabled"]


async def test_every_spelling_of_a_local_name_shares_its_throttle(tmp_path: Path) -> None:
    clock = Clock()
    async with auth_gateway(tmp_path, clock=clock) as gateway, cookie_session() as http:
        for spelling in ("ａｌｉｃｅ", "ＡＬＩＣＥ", "Alice", "ａｌｉｃｅ", "alice"):
            assert (await gateway.login(http, spelling, password="guess", code="000000")).status == 401
        for spelling in ("alice", "ａｌｉｃｅ", "ALICE"):  # her own password waits too
            limited = await gateway.login(http, spelling, code=gateway.code("alice"))
            assert (limited.status, limited.headers.get("Retry-After")) == (429, "1"), spelling
        clock.advance(1)
        assert (await gateway.login(http, "alice")).status == 200


async def test_addresses_rotating_through_one_ipv6_64_are_throttled_as_one_source(tmp_path: Path) -> None:
    network = {"allow": ["127.0.0.0/8", "2001:db8::/32"], "trusted_proxies": ["127.0.0.0/8"]}
    async with auth_gateway(tmp_path, {"network": network}) as gateway, cookie_session() as http:
        for n in range(20):  # a different user and address each time: only the source counter sees them all
            sprayed = await gateway.login(http, f"user{n}", password="guess", code="000000",
                                          **{"X-Forwarded-For": f"2001:db8:1:2:{n:x}:{n:x}::1"})
            assert sprayed.status == 401, n
        limited = await gateway.login(http, "alice", **{"X-Forwarded-For": "2001:db8:1:2:ffff::99"})
        assert limited.status == 429 and int(limited.headers["Retry-After"]) >= 1
        event = (await gateway.audit())[-1]
        assert (event.source, event.reason) == ("2001:db8:1:2:ffff::99", "rate limited (source)")
        elsewhere = await gateway.login(http, "alice", **{"X-Forwarded-For": "2001:db8:1:3::1"})
        assert elsewhere.status == 200  # the next /64 is someone else


async def test_a_flood_beyond_the_hashing_bound_is_refused_at_once_while_a_colleague_signs_in(
        tmp_path: Path) -> None:
    network = {"allow": ["127.0.0.0/8", "2001:db8::/32"], "trusted_proxies": ["127.0.0.0/8"]}
    async with auth_gateway(tmp_path, {"network": network}) as gateway, cookie_session() as http, \
            aiohttp.ClientSession() as attacker:
        gate = gateway.gateway.app[LOGIN].gate
        home = "2001:db8:aaaa:1::"
        assert (await gateway.login(http, "alice", **{"X-Forwarded-For": f"{home}7"})).status == 200
        checks = 'deskgate_auth_duration_seconds_count{backend="local"}'
        checks_before = await gateway.metric(http, checks) or 0

        async def stranger(n: int) -> tuple[int, str | None, float]:
            started = time.monotonic()  # each from its own /48: no source counter sees two of them
            response = await gateway.login(attacker, f"flood{n}", password="guess", code="000000",
                                           **{"X-Forwarded-For": f"2001:db8:{n + 1:x}::1"})
            return response.status, response.headers.get("Retry-After"), time.monotonic() - started

        flood = [asyncio.create_task(stranger(n)) for n in range(FLOOD)]
        async with asyncio.timeout(30):
            while gate.waiting < gate.queue:  # the strangers' queue is full
                await asyncio.sleep(0.05)
        colleague = await gateway.login(http, "alice", code=gateway.code("alice", 1),
                                        **{"X-Forwarded-For": f"{home}8"})  # her familiar /64
        assert colleague.status == 200
        answers = await asyncio.gather(*flood)
        assert {status for status, _, _ in answers} <= {401, 503}
        busy = [(retry_after, seconds) for status, retry_after, seconds in answers if status == 503]
        beyond = FLOOD - gate.slots - gate.queue
        assert len(busy) >= beyond and {retry_after for retry_after, _ in busy} == {str(gate.retry_after)}
        refused_at_once = await gateway.metric(
            http, 'deskgate_password_checks_refused_total{reason="queue_full"}') or 0
        assert refused_at_once >= beyond
        checked = (await gateway.metric(http, checks) or 0) - checks_before
        assert checked <= gate.slots + gate.queue + 1  # the flood hashed no more than the bound lets it
        # Those beyond the line were answered before the hashing they would have waited for was over.
        hashing_took = max(seconds for status, _, seconds in answers if status == 401)
        assert max(sorted(seconds for _, seconds in busy)[:beyond]) < hashing_took
