"""The allow-list on a real gateway: denied sources, spoofed and honoured proxy headers, IPv6, per-policy ``from``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import pytest
from yarl import URL

from tests.functional.auth_helpers import PASSWORD, auth_gateway, cookie_session

pytestmark = pytest.mark.functional


async def refused(http: aiohttp.ClientSession, url: str, **kwargs: Any) -> str:
    """What the gateway said refusing a request: its 403 text, or "" when the connection closed first.

    A peer outside the allow-list is refused as its connection is accepted, before its request
    is read: if the request was already on its way, closing the connection may reset it.
    """
    try:
        response = await http.request(kwargs.pop("method", "GET"), url, **kwargs)
    except aiohttp.ClientConnectionError:
        return ""
    assert response.status == 403
    return await response.text()


async def test_a_source_outside_the_allow_list_is_refused_before_anything_else(tmp_path: Path) -> None:
    async with auth_gateway(tmp_path, {"network": {"allow": ["10.0.0.0/8"]}}) as gateway, cookie_session() as http:
        for path in ("/login", "/api/v1/targets", "/static/login.js", "/healthz"):
            text = await refused(http, f"{gateway.url}{path}")
            assert text in ("", "Your network (127.0.0.1) is not allowed to use this gateway.\n"
                                "Connect from an allowed network, or ask your administrator to add it.\n"), path
        login = {"username": "alice", "password": PASSWORD, "totp": gateway.code("alice")}
        await refused(http, f"{gateway.url}/api/v1/login", method="POST", json=login)
        assert not http.cookie_jar.filter_cookies(gateway.url)  # type: ignore[arg-type]
        with pytest.raises((aiohttp.WSServerHandshakeError, aiohttp.ClientConnectionError)):
            await http.ws_connect(f"{gateway.url.replace('http', 'ws', 1)}/ws/vnc/desk-01", origin=gateway.url)
        assert await gateway.metric(http, 'deskgate_connections_refused_total{listener="web",reason="network"}') == 6
        assert await gateway.metric(http, "deskgate_ip_denied_total") == 6
        # Audited once per source and minute, however many requests: a scan must not flood the log.
        (event,) = [event for event in await gateway.audit() if event.action == "network.denied"]
        assert (event.source, event.outcome, event.target) == ("127.0.0.1", "denied", "web listener")


async def test_a_spoofed_forwarded_for_from_an_untrusted_peer_is_ignored(tmp_path: Path) -> None:
    async with auth_gateway(tmp_path, {"network": {"allow": ["10.0.0.0/8"]}}) as gateway, cookie_session() as http:
        for header, value in (("X-Forwarded-For", "10.1.2.3"), ("Forwarded", "for=10.1.2.3"),
                              ("X-Forwarded-For", "10.1.2.3, 10.1.2.4")):
            refused = await http.get(f"{gateway.url}/login", headers={header: value})
            assert refused.status == 403 and "(127.0.0.1)" in await refused.text()


async def test_forwarded_for_is_honoured_from_a_trusted_proxy_right_most_untrusted_hop(tmp_path: Path) -> None:
    network = {"allow": ["10.0.0.0/8"], "trusted_proxies": ["127.0.0.0/8", "192.168.7.0/24"]}
    policy = [{"name": "office", "groups": ["operators"], "from": ["10.1.0.0/16"], "targets": ["desk-*"]}]
    async with auth_gateway(tmp_path, {"network": network, "policies": policy}) as gateway, cookie_session() as http:
        # The client claims 10.9.9.9; the proxy in front appended 203.0.113.5, the address it saw.
        spoofed = await http.get(f"{gateway.url}/login", headers={"X-Forwarded-For": "10.9.9.9, 203.0.113.5"})
        assert spoofed.status == 403 and "(203.0.113.5)" in await spoofed.text()
        # Two trusted proxies in a row: the hop before them is the client.
        chain = {"X-Forwarded-For": "203.0.113.5, 10.1.2.3, 192.168.7.10"}
        assert (await http.get(f"{gateway.url}/login", headers=chain)).status == 200
        login = await gateway.login(http, "alice", **chain)
        assert login.status == 200
        targets = await (await http.get(f"{gateway.url}/api/v1/targets", headers=chain)).json()
        assert [target["name"] for target in targets["targets"]] == ["desk-01"]
        # Allowed on the network, but outside the policy's `from`: no desktop from there.
        elsewhere = {"X-Forwarded-For": "10.2.0.1"}
        assert (await (await http.get(f"{gateway.url}/api/v1/targets", headers=elsewhere)).json())["targets"] == []
        garbled = await http.get(f"{gateway.url}/login", headers={"X-Forwarded-For": "10.1.2.3, unknown"})
        assert garbled.status == 403
        assert (await gateway.audit())[0].source == "203.0.113.5"


async def test_rfc_7239_forwarded_with_ipv6_from_a_trusted_proxy(tmp_path: Path) -> None:
    network = {"allow": ["2001:db8::/32"], "trusted_proxies": ["127.0.0.0/8"], "proxy_header": "Forwarded"}
    async with auth_gateway(tmp_path, {"network": network}) as gateway, cookie_session() as http:
        honoured = {"Forwarded": 'for="[2001:db8:cafe::17]:4711";proto=https'}
        assert (await http.get(f"{gateway.url}/login", headers=honoured)).status == 200
        # X-Forwarded-For is not the configured header: a client could have written it.
        ignored = {"X-Forwarded-For": "2001:db8::1"}
        assert (await http.get(f"{gateway.url}/login", headers=ignored)).status == 403


async def test_an_ipv6_gateway_on_the_ipv6_loopback(tmp_path: Path) -> None:
    settings = {"listen": {"http": "[::1]:0"}, "network": {"allow": ["::1/128"]}}
    async with auth_gateway(tmp_path, settings) as gateway, cookie_session() as http:
        assert gateway.url.startswith("http://[::1]:")
        login = await gateway.login(http, "alice")
        assert login.status == 200
        targets = await (await http.get(f"{gateway.url}/api/v1/targets")).json()
        assert [target["name"] for target in targets["targets"]] == ["desk-01"]  # the policy allows ::1/128
        assert (await gateway.audit())[-1].source == "::1"
    async with auth_gateway(tmp_path / "v4only", {"listen": {"http": "[::1]:0"}, "network": {"allow": ["127.0.0.0/8"]}}
                            ) as gateway, cookie_session() as http:
        text = await refused(http, f"{gateway.url}/login")
        assert text == "" or "Your network (::1) is not allowed" in text


# -- Host and origin: DNS rebinding, TLS-terminating proxies ----------------------------------------------


async def test_a_request_for_a_name_that_is_not_the_gateways_is_refused(tmp_path: Path) -> None:
    """A DNS-rebinding page (its name now pointing at the gateway) is refused before any handler runs."""
    async with auth_gateway(tmp_path) as gateway, cookie_session() as http:
        port = URL(gateway.url).port
        for host in ("evil.example", f"evil.example:{port}", "rebind.evil.example.", f"127.0.0.1.evil.example:{port}"):
            response = await http.get(f"{gateway.url}/healthz", headers={"Host": host})
            assert response.status == 421, host
            assert "does not answer to the name" in await response.text()
            assert "set listen.public_url" in await response.text()
        login = await gateway.login(http, "alice", Host=f"evil.example:{port}", Origin=f"http://evil.example:{port}")
        assert login.status == 421 and not http.cookie_jar.filter_cookies(gateway.url)  # type: ignore[arg-type]
        assert (await http.get(f"{gateway.url}/healthz", headers={"Host": "[not-an-address]"})).status == 400
        assert await gateway.metric(http, "deskgate_host_refused_total") == 6
        assert not [event for event in await gateway.audit() if event.action == "login"]  # no password was checked
        # The gateway's own forms on loopback: any IP address, localhost, [::1].
        for host in (f"127.0.0.1:{port}", f"localhost:{port}", "LOCALHOST", f"[::1]:{port}", f"127.0.0.2:{port}"):
            assert (await http.get(f"{gateway.url}/healthz", headers={"Host": host})).status == 200, host
        login = await gateway.login(http, "alice", Host=f"localhost:{port}", Origin=f"http://localhost:{port}")
        assert login.status == 200
        # A page on another origin sending to the gateway's own name is still cross-site.
        other = await gateway.login(http, "alice", Origin=f"http://localhost:{port}")
        assert other.status == 403 and "cross-site" in (await other.json())["error"]


async def test_behind_a_tls_terminating_proxy_origins_are_checked_against_the_public_url(tmp_path: Path) -> None:
    public = "https://gateway.example.com"
    settings = {"listen": {"public_url": public},
                "network": {"allow": ["10.0.0.0/8"], "trusted_proxies": ["127.0.0.0/8"]}}
    async with auth_gateway(tmp_path, settings) as gateway, \
            aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True, treat_as_secure_origin=gateway.url)) as http:
        # The proxy keeps the browser's Host and says it was https.
        proxied = {"X-Forwarded-For": "10.1.2.3", "X-Forwarded-Proto": "https", "Origin": public,
                   "Host": "gateway.example.com"}
        login = await gateway.login(http, "alice", **proxied)
        assert login.status == 200, await login.text()
        cookie = login.cookies["__Host-deskgate"]  # the browser talks TLS to the proxy: Secure, host-only
        assert cookie["secure"] and login.headers["Strict-Transport-Security"] == "max-age=31536000"
        targets = await http.get(f"{gateway.url}/api/v1/targets", headers=proxied)
        assert targets.status == 200
        # A proxy that rewrites Host forwards the browser's in X-Forwarded-Host.
        rewritten = {**proxied, "Host": "backend.internal:8080", "X-Forwarded-Host": "gateway.example.com"}
        assert (await http.get(f"{gateway.url}/api/v1/targets", headers=rewritten)).status == 200
        rebound = {**rewritten, "X-Forwarded-Host": "evil.example"}
        assert (await http.get(f"{gateway.url}/api/v1/targets", headers=rebound)).status == 421
        # The public origin, scheme included, is the only own origin.
        for origin in ("http://gateway.example.com", f"http://{URL(gateway.url).authority}", "https://evil.example"):
            logout = await http.post(f"{gateway.url}/api/v1/logout", headers={**proxied, "Origin": origin})
            assert logout.status == 403, origin


async def test_forwarded_proto_and_host_from_a_trusted_proxy_make_the_origin(tmp_path: Path) -> None:
    """Without listen.public_url, the origin is the scheme and host the browser used, as the proxy forwards them."""
    network = {"allow": ["10.0.0.0/8"], "trusted_proxies": ["127.0.0.0/8"], "proxy_header": "Forwarded"}
    async with auth_gateway(tmp_path, {"network": network}) as gateway, cookie_session() as http:
        proxied = {"Forwarded": 'for=10.1.2.3;proto=https;host="10.0.0.5"', "Origin": "https://10.0.0.5"}
        assert (await gateway.login(http, "alice", **proxied)).status == 200
        plain = {**proxied, "Origin": "http://10.0.0.5"}
        assert (await gateway.login(http, "alice", **plain)).status == 403
    async with auth_gateway(tmp_path / "direct") as gateway, cookie_session() as http:
        # From a peer that is not a trusted proxy, forwarded names are the client's own words: ignored.
        spoofed = {"X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "https", "Origin": gateway.url}
        assert (await gateway.login(http, "alice", **spoofed)).status == 200
