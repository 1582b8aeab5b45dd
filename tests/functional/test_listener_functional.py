"""The listeners' front door, with raw sockets from loopback aliases (127.0.0.2 and up, all local on Linux).

Against ``deskgate serve`` as a child process:

- a peer outside ``network.allow`` is refused as it connects, before it sends a byte;
- a client sending its headers (or its body) a byte at a time is cut off at
  ``network.header_timeout`` (``body_timeout``) with a 408; an idle keep-alive connection
  is closed at ``header_timeout`` without one;
- connections are bounded per source and in all; a trusted proxy is let in and not
  bounded per source.

In-process: an open WebSocket outlives the header deadline, and under TLS a refused peer
gets no handshake and a slow handshake is cut. Without sockets: which peers each listener
admits, and that an IPv6 source is its /64.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from ipaddress import ip_address, ip_network
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from base.metrics import Metrics
from gateway.config import ConnectionLimits, load_config
from gateway.demo import XvncDesktop
from gateway.rfb.messages import Encoding
from gateway.web.app import listener_gates
from gateway.web.listener import ConnectionGate, ListenerPolicy, Refusal
from tests.functional.auth_helpers import (
    audit_events,
    auth_gateway,
    cookie_session,
    free_port,
    gateway_process,
    wait_ready,
    write_config,
)
from tests.ldap_server import write_ca, write_server_certificate
from tests.rfbclient import WebSocketRFBClient

pytestmark = [pytest.mark.functional, pytest.mark.timeout(120)]

HOST = "127.0.0.1"
HEALTHZ = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


@dataclass(frozen=True)
class Served:
    port: int
    metrics_url: str
    config_path: Path


@contextlib.asynccontextmanager
async def serve(workdir: Path, changes: dict[str, Any]) -> AsyncIterator[Served]:
    """``deskgate serve`` on free loopback ports, ready, with no connection of the readiness probe left open."""
    port, metrics_port = free_port(), free_port()
    listen = {"listen": {"http": f"{HOST}:{port}", "metrics": f"{HOST}:{metrics_port}"}}
    config_path = write_config(workdir, {**changes, **listen})
    with gateway_process(config_path, port) as url:
        await wait_ready(url)
        served = Served(port, f"http://{HOST}:{metrics_port}/metrics", config_path)
        async with asyncio.timeout(10):
            while await metric(served, 'deskgate_connections_open{listener="web"}') != 0:
                await asyncio.sleep(0.05)
        yield served


async def metric(served: Served, line_start: str) -> float | None:
    async with aiohttp.ClientSession() as http:
        text = await (await http.get(served.metrics_url)).text()
    found = [line for line in text.splitlines() if line.startswith(line_start)]
    return float(found[0].rsplit(" ", 1)[1]) if found else None


async def connect(port: int, source: str = HOST) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection(HOST, port, local_addr=(source, 0))


async def answer_to_nothing(port: int, source: str, within: float = 5.0) -> bytes:
    """Connect from ``source``, send nothing, and return all the gateway says before it closes."""
    reader, writer = await connect(port, source)
    try:
        return await asyncio.wait_for(reader.read(), within)
    finally:
        writer.close()


async def healthz(port: int, source: str = HOST) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A keep-alive connection from ``source`` that has been served once (so the gateway holds it)."""
    reader, writer = await connect(port, source)
    writer.write(HEALTHZ)
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert head.startswith(b"HTTP/1.1 200"), head
    length = next(int(line.split(b":")[1]) for line in head.lower().splitlines() if line.startswith(b"content-length:"))
    await asyncio.wait_for(reader.readexactly(length), 5)
    return reader, writer


async def trickle(writer: asyncio.StreamWriter, data: bytes, interval: float) -> int:
    """Send ``data`` a byte per ``interval`` until done or the gateway hangs up; return the bytes sent."""
    for sent in range(len(data)):
        try:
            writer.write(data[sent:sent + 1])
            await writer.drain()
        except ConnectionError:
            return sent
        await asyncio.sleep(interval)
    return len(data)


async def test_a_peer_outside_the_allow_list_is_refused_before_it_sends_a_byte(tmp_path: Path) -> None:
    async with serve(tmp_path, {"network": {"allow": ["127.0.0.1/32"]}}) as served:
        answer = await answer_to_nothing(served.port, "127.0.0.2")
        assert answer.startswith(b"HTTP/1.1 403 Forbidden\r\n"), answer
        assert b"Your network (127.0.0.2) is not allowed to use this gateway." in answer
        assert b"Connection: close" in answer
        reader, writer = await healthz(served.port)  # the allowed peer is served
        writer.close()
        assert await metric(served, 'deskgate_connections_refused_total{listener="web",reason="network"}') == 1
        assert await metric(served, "deskgate_ip_denied_total") == 1
    (event,) = [event for event in await audit_events(load_config(served.config_path))
                if event.action == "network.denied"]
    assert (event.source, event.target, event.outcome) == ("127.0.0.2", "web listener", "denied")


async def test_a_client_sending_its_request_a_byte_at_a_time_is_cut_off(tmp_path: Path) -> None:
    deadline = 2
    settings = {"network": {"allow": ["127.0.0.1/32"], "header_timeout": f"{deadline}s", "body_timeout": f"{deadline}s"}}
    async with serve(tmp_path, settings) as served:
        loop = asyncio.get_running_loop()
        headers = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: " + b"a" * 200 + b"\r\n\r\n"
        body = b'{"username": "alice", "password": "' + b"p" * 200 + b'"}'
        requests = {"headers": headers,
                    "body": b"POST /api/v1/login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                            b"Content-Length: %d\r\n\r\n" % len(body) + body}
        for phase, request in requests.items():
            reader, writer = await connect(served.port)
            started = loop.time()
            if phase == "body":  # the headers at once, then the body a byte at a time
                writer.write(request[:request.index(b"\r\n\r\n") + 4])
                request = body
            sender = asyncio.create_task(trickle(writer, request, 0.1))
            answer = await asyncio.wait_for(reader.read(), deadline + 8)
            cut_after = loop.time() - started
            sent = await asyncio.wait_for(sender, 5)
            writer.close()
            assert answer.startswith(b"HTTP/1.1 408 Request Timeout\r\n"), (phase, answer)
            assert sent < len(request), phase  # cut off while still sending
            assert deadline - 0.5 < cut_after < deadline + 3, (phase, cut_after)
            assert await metric(served, f'deskgate_connections_cut_total{{listener="web",reason="{phase}"}}') == 1

        # A served keep-alive connection that stays idle is closed at the deadline, without a 408.
        reader, writer = await healthz(served.port)
        assert await asyncio.wait_for(reader.read(), deadline + 8) == b""
        writer.close()
        assert await metric(served, 'deskgate_connections_cut_total{listener="web",reason="headers"}') == 1


async def test_connections_are_bounded_per_source_and_in_all(tmp_path: Path) -> None:
    network = {"allow": ["127.0.0.1/32", "127.0.0.3/32"], "trusted_proxies": ["127.0.0.4/32"],
               "max_connections_per_source": 2, "max_connections": 4}
    async with serve(tmp_path, {"network": network}) as served:
        first = [await healthz(served.port), await healthz(served.port)]
        answer = await answer_to_nothing(served.port, HOST)
        assert answer.startswith(b"HTTP/1.1 503 Service Unavailable\r\n"), answer
        assert b"Too many connections from your address (127.0.0.1)" in answer
        third = [await healthz(served.port, "127.0.0.3"), await healthz(served.port, "127.0.0.3")]  # another source
        answer = await answer_to_nothing(served.port, "127.0.0.5")  # refused for its network first
        assert answer.startswith(b"HTTP/1.1 403"), answer
        answer = await answer_to_nothing(served.port, "127.0.0.3")
        assert b"The gateway is at its connection limit" in answer, answer
        for _, writer in first + third:
            writer.close()
        async with asyncio.timeout(10):
            while await metric(served, 'deskgate_connections_open{listener="web"}') != 0:
                await asyncio.sleep(0.05)
        # A trusted proxy carries many clients: not bounded per source (the forwarded address is judged per request).
        proxied = []
        for _ in range(3):
            reader, writer = await connect(served.port, "127.0.0.4")
            writer.write(HEALTHZ.replace(b"\r\n\r\n", b"\r\nX-Forwarded-For: 127.0.0.1\r\n\r\n"))
            assert (await asyncio.wait_for(reader.readline(), 5)).startswith(b"HTTP/1.1 200")
            proxied.append(writer)
        for writer in proxied:
            writer.close()
        for reason, count in (("per_source", 1), ("capacity", 1), ("network", 1)):
            assert await metric(served, f'deskgate_connections_refused_total{{listener="web",reason="{reason}"}}') \
                == count, reason


async def test_an_open_websocket_outlives_the_header_deadline(tmp_path: Path, desktop: XvncDesktop) -> None:
    settings = {"network": {"header_timeout": "1s", "body_timeout": "1s"}}
    async with auth_gateway(tmp_path, settings, desktop_port=desktop.port) as gateway, cookie_session() as http:
        assert (await gateway.login(http, "alice")).status == 200
        ws = await http.ws_connect(f"{gateway.url.replace('http', 'ws', 1)}/ws/vnc/desk-01", protocols=["binary"],
                                   origin=gateway.url)
        client = WebSocketRFBClient(ws)
        init = await client.handshake()
        await asyncio.sleep(3)  # three header deadlines
        assert (await client.capture([Encoding.ZRLE])).shape == (init.height, init.width, 3)
        assert not ws.closed
        assert await gateway.metric(http, "deskgate_connections_cut_total") is None
        await ws.close()


async def test_under_tls_a_refused_peer_gets_no_handshake_and_a_slow_one_is_cut(tmp_path: Path) -> None:
    ca_path, ca_key, ca_certificate = write_ca(tmp_path, "gateway-ca")
    certificate, key = write_server_certificate(tmp_path, ca_key, ca_certificate)
    settings = {"tls": {"cert": str(certificate), "key": str(key)},
                "network": {"allow": ["127.0.0.1/32"], "header_timeout": "1s"}}
    client_tls = ssl.create_default_context(cafile=str(ca_path))
    async with auth_gateway(tmp_path, settings) as gateway, \
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=client_tls)) as http:
        port = int(gateway.url.rsplit(":", 1)[1])
        assert await answer_to_nothing(port, "127.0.0.2") == b""  # closed before any handshake
        with pytest.raises((ssl.SSLError, ConnectionError)):
            await asyncio.open_connection(HOST, port, ssl=client_tls, local_addr=("127.0.0.2", 0))
        assert await answer_to_nothing(port, HOST) == b""  # no ClientHello in time: cut
        assert (await http.get(f"{gateway.url}/healthz")).status == 200
        assert await gateway.metric(http, 'deskgate_connections_refused_total{listener="web",reason="network"}') == 2
        assert await gateway.metric(http, 'deskgate_connections_cut_total{listener="web",reason="headers"}') == 1


def test_an_exposed_metrics_listener_admits_network_metrics_allow_only(tmp_path: Path) -> None:
    path = write_config(tmp_path, {"listen": {"metrics": "192.0.2.10:9108"},
                                   "network": {"allow": ["10.0.0.0/8"], "trusted_proxies": ["172.16.0.0/12"]}})
    web, metrics = listener_gates(load_config(path), Metrics(), lambda *_: None)
    assert web.admit(ip_address("10.1.2.3")) is None and web.admit(ip_address("172.16.0.1")) is None  # a proxy
    assert web.admit(ip_address("192.0.2.1")) is Refusal.NETWORK
    assert metrics.admit(ip_address("10.1.2.3")) is None  # network.metrics_allow defaults to network.allow
    assert metrics.admit(ip_address("172.16.0.1")) is Refusal.NETWORK  # no proxy in front of Prometheus
    assert metrics.admit(ip_address("192.0.2.1")) is Refusal.NETWORK
    path = write_config(tmp_path, {"listen": {"metrics": "192.0.2.10:9108"},
                                   "network": {"allow": ["10.0.0.0/8"], "metrics_allow": ["192.0.2.0/24"]}})
    web, metrics = listener_gates(load_config(path), Metrics(), lambda *_: None)
    assert metrics.admit(ip_address("10.1.2.3")) is Refusal.NETWORK and metrics.admit(ip_address("192.0.2.7")) is None
    on_loopback = listener_gates(load_config(write_config(tmp_path, {"network": {"allow": ["10.0.0.0/8"]}})),
                                 Metrics(), lambda *_: None)[1]
    assert on_loopback.admit(ip_address("127.0.0.1")) is None  # a local Prometheus, whatever network.allow says


def test_a_source_is_an_ipv4_address_or_an_ipv6_64() -> None:
    policy = ListenerPolicy("web", (ip_network("2001:db8::/32"), ip_network("10.0.0.0/8")), (),
                            ConnectionLimits(max_connections=10, max_connections_per_source=2))
    gate = ConnectionGate(policy, Metrics(), lambda *_: None)
    rotating = [ip_address(f"2001:db8:0:1::{n:x}") for n in range(1, 4)]  # one host's /64, a new address each time
    assert [gate.admit(address) for address in rotating] == [None, None, Refusal.PER_SOURCE]
    assert gate.admit(ip_address("2001:db8:0:2::1")) is None  # the next /64 is another source
    assert [gate.admit(ip_address("10.0.0.1")), gate.admit(ip_address("10.0.0.2"))] == [None, None]
    gate.release(rotating[0])
    assert gate.admit(rotating[2]) is None and gate.open == 5
