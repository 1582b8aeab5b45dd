"""The allow-list on a real gateway: denied sources, spoofed and honoured proxy headers, IPv6, per-policy ``from``."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest

from tests.functional.auth_helpers import auth_gateway, cookie_session

pytestmark = pytest.mark.functional


async def test_a_source_outside_the_allow_list_is_refused_before_anything_else(tmp_path: Path) -> None:
    async with auth_gateway(tmp_path, {"network": {"allow": ["10.0.0.0/8"]}}) as gateway, cookie_session() as http:
        for path in ("/login", "/api/v1/targets", "/static/login.js", "/healthz"):
            refused = await http.get(f"{gateway.url}{path}")
            assert refused.status == 403, path
            assert "Your network (127.0.0.1) is not allowed" in await refused.text()
        login = await gateway.login(http, "alice")
        assert login.status == 403 and not http.cookie_jar.filter_cookies(gateway.url)  # type: ignore[arg-type]
        with pytest.raises(aiohttp.WSServerHandshakeError) as upgrade:
            await http.ws_connect(f"{gateway.url.replace('http', 'ws', 1)}/ws/vnc/desk-01", origin=gateway.url)
        assert upgrade.value.status == 403
        assert await gateway.metric(http, "deskgate_ip_denied_total") == 6
        # Audited once per source and minute, however many requests: a scan must not flood the log.
        (event,) = [event for event in await gateway.audit() if event.action == "network.denied"]
        assert (event.source, event.outcome, event.target) == ("127.0.0.1", "denied", "/login")


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
        refused = await http.get(f"{gateway.url}/login")
        assert refused.status == 403 and "(::1)" in await refused.text()
