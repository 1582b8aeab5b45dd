"""The listeners' front door: who may connect, how many, and how long a request may take to arrive.

aiohttp reads a request's headers for as long as the client likes, and the allow-list
middleware runs only once they are complete, so a peer outside ``network.allow`` or a
client sending a byte a second holds a connection for free. :class:`GuardedSite` is an
aiohttp site that accepts connections itself and:

- refuses a connection as it is accepted, before a byte is read or a TLS handshake begun
  (:class:`ConnectionGate`): a peer outside the listener's networks (trusted proxies are
  let in; the request-level check then judges the address they forward), or one over
  the per-source or the total bound;
- hands the others to the loop (``connect_accepted_socket``, TLS included) with a
  :class:`GuardedConnection`, a thin protocol in front of aiohttp's own request handler
  that cuts a connection whose request headers are not complete ``header_timeout`` after
  it was accepted (TLS handshake included) or after its previous response was finished,
  and one whose request body has not arrived ``body_timeout`` after its headers;
- stands aside while a request is being handled: a long download or an open WebSocket
  is a response being written, not a request being read.

A request's lifetime is seen by wrapping the runner's request handler: aiohttp handles
each request, and writes its response, in a task of its own, so that task's end is the
end of the response.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
import ssl
from collections import Counter
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from enum import StrEnum
from ipaddress import IPv4Address, IPv6Address, IPv6Network, ip_address
from typing import Any, cast

from aiohttp import web
from aiohttp.streams import StreamReader
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from auth.netacl import IPAddress, IPNetwork
from base.metrics import Metrics
from gateway.config import ConnectionLimits

log = logging.getLogger(__name__)

#: One source, for the per-source bound: an IPv4 address, or the /64 an IPv6 address is in
#: (a single host is commonly given a whole /64, so counting addresses would not bound it).
Source = IPv4Address | IPv6Network


def peer_address(peername: object) -> IPAddress | None:
    """The address in a transport's ``peername`` (an IPv4-mapped IPv6 address as IPv4), or None."""
    if not isinstance(peername, tuple) or not peername:
        return None
    try:
        address = ip_address(str(peername[0]).split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def source_of(address: IPAddress) -> Source:
    """The source ``address`` counts towards (see :data:`Source`)."""
    if isinstance(address, IPv6Address):
        return IPv6Network((int(address) >> 64 << 64, 64))
    return address


def in_networks(address: IPAddress, networks: tuple[IPNetwork, ...]) -> bool:
    return any(address.version == network.version and address in network for network in networks)


@dataclass(frozen=True, slots=True)
class ListenerPolicy:
    """Who may connect to one listener."""

    name: str  # the ``listener`` label of its metrics: web or metrics
    allow: tuple[IPNetwork, ...] | None  # peers let in; None lets every peer in
    trusted_proxies: tuple[IPNetwork, ...]  # let in too, and not bounded per source: many clients share them
    limits: ConnectionLimits = ConnectionLimits()


class Refusal(StrEnum):
    """Why a connection was refused on arrival, or cut before its request arrived."""

    NETWORK = "network"  # the peer is not in the listener's networks
    PER_SOURCE = "per_source"  # the source holds max_connections_per_source already
    CAPACITY = "capacity"  # the listener holds max_connections already
    HEADERS = "headers"  # the request's headers did not arrive within header_timeout
    BODY = "body"  # the request's body did not arrive within body_timeout


#: Told of every refusal and cut, with the listener's name and the peer's address (None if it has none).
RefusalReporter = Callable[[str, IPAddress | None, Refusal], None]

LATE = "The request did not arrive in time; the connection is closed.\n"
REFUSAL_RESPONSES = {
    Refusal.NETWORK: ("403 Forbidden", "Your network ({address}) is not allowed to use this gateway.\n"
                      "Connect from an allowed network, or ask your administrator to add it.\n"),
    Refusal.PER_SOURCE: ("503 Service Unavailable", "Too many connections from your address ({address}); "
                         "close some tabs or try again in a minute.\n"),
    Refusal.CAPACITY: ("503 Service Unavailable", "The gateway is at its connection limit; try again in a minute.\n"),
    Refusal.HEADERS: ("408 Request Timeout", LATE),
    Refusal.BODY: ("408 Request Timeout", LATE),
}


def plain_response(refusal: Refusal, address: IPAddress | None) -> bytes:
    """A whole HTTP response saying why the connection is being closed."""
    status, text = REFUSAL_RESPONSES[refusal]
    body = text.format(address=address or "unknown").encode()
    return (f"HTTP/1.1 {status}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\nCache-Control: no-store\r\n\r\n").encode() + body


class ConnectionGate:
    """Admits or refuses a listener's connections on arrival and counts those it holds."""

    def __init__(self, policy: ListenerPolicy, metrics: Metrics, report: RefusalReporter) -> None:
        self.policy = policy
        self.report = report
        self.open = 0
        self._per_source: Counter[Source] = Counter()
        self._open_gauge = metrics.connections_open.labels(listener=policy.name)
        self._refused = metrics.connections_refused_total
        self._cut = metrics.connections_cut_total

    def admit(self, address: IPAddress | None) -> Refusal | None:
        """Take a slot for a new connection from ``address``, or say why not (the caller then closes it)."""
        refusal = Refusal.NETWORK if address is None else self._refusal(address)
        if refusal is not None:
            self._refused.labels(listener=self.policy.name, reason=refusal.value).inc()
            self.report(self.policy.name, address, refusal)
            return refusal
        assert address is not None
        if not in_networks(address, self.policy.trusted_proxies):
            self._per_source[source_of(address)] += 1
        self.open += 1
        self._open_gauge.inc()
        return None

    def _refusal(self, address: IPAddress) -> Refusal | None:
        policy, limits = self.policy, self.policy.limits
        proxy = in_networks(address, policy.trusted_proxies)
        if not (policy.allow is None or proxy or in_networks(address, policy.allow)):
            return Refusal.NETWORK
        if self.open >= limits.max_connections:
            return Refusal.CAPACITY
        if not proxy and self._per_source[source_of(address)] >= limits.max_connections_per_source:
            return Refusal.PER_SOURCE
        return None

    def release(self, address: IPAddress) -> None:
        """Give back the slot of an admitted connection that has ended."""
        if not in_networks(address, self.policy.trusted_proxies):
            source = source_of(address)
            self._per_source[source] -= 1
            if self._per_source[source] <= 0:
                del self._per_source[source]
        self.open -= 1
        self._open_gauge.dec()

    def cut(self, address: IPAddress, refusal: Refusal) -> None:
        self._cut.labels(listener=self.policy.name, reason=refusal.value).inc()
        self.report(self.policy.name, address, refusal)


class GuardedConnection(asyncio.Protocol):
    """One admitted connection: aiohttp's request handler behind read deadlines; gives its slot back at the end."""

    def __init__(self, site: GuardedSite, address: IPAddress, accepted_at: float) -> None:
        self._site = site
        self._gate = site.gate
        self._limits = site.gate.policy.limits
        self._address: IPAddress | None = address  # None once its slot is given back
        self._accepted_at = accepted_at
        self._made = False
        self._transport: asyncio.Transport | None = None
        self._handler: RequestHandler | None = None
        self._deadline: asyncio.TimerHandle | None = None
        self._waiting_for: Refusal | None = None  # HEADERS or BODY while a deadline runs
        self._body: StreamReader | None = None  # of the request whose body is awaited
        self._requests = 0
        self._next_request_begun = False  # bytes arrived since the last request's headers were complete

    # -- asyncio.Protocol ---------------------------------------------------------------------------------

    def connection_made(self, base_transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, base_transport)  # uvloop's are not asyncio.Transport subclasses
        self._made = True
        self._transport = transport
        self._arm(self._accepted_at + self._limits.header_timeout - self._loop().time(), Refusal.HEADERS)
        self._handler = self._site.new_handler(self)
        self._handler.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self._waiting_for is not Refusal.BODY:
            self._next_request_begun = True
        if self._handler is not None:
            self._handler.data_received(data)

    def eof_received(self) -> None:
        if self._handler is not None:
            self._handler.eof_received()

    def connection_lost(self, exc: BaseException | None) -> None:
        self._disarm()
        self._release()
        if self._handler is not None:
            self._site.forget(self._handler)
            self._handler.connection_lost(exc)
        self._transport = None

    def pause_writing(self) -> None:
        if self._handler is not None:
            self._handler.pause_writing()

    def resume_writing(self) -> None:
        if self._handler is not None:
            self._handler.resume_writing()

    # -- what the site tells it -----------------------------------------------------------------------------

    def handshake_ended(self) -> None:
        """The loop is done setting the connection up; if it never came up (a failed TLS handshake), end it."""
        if self._made or self._address is None:
            return
        if self._loop().time() >= self._accepted_at + self._limits.header_timeout:
            self._gate.cut(self._address, Refusal.HEADERS)
        self._release()

    def request_started(self, request: BaseRequest) -> None:
        """The request's headers are complete: no header deadline until its response is written."""
        self._requests += 1
        self._next_request_begun = False
        self._disarm()
        if not request.content.is_eof():
            self._arm(self._limits.body_timeout, Refusal.BODY)
            self._body = request.content
            request.content.on_eof(self._body_arrived)
        task = asyncio.current_task()
        if task is not None:
            task.add_done_callback(self._response_finished)

    # -- internals --------------------------------------------------------------------------------------------

    @staticmethod
    def _loop() -> asyncio.AbstractEventLoop:
        return asyncio.get_running_loop()

    def _release(self) -> None:
        if self._address is not None:
            self._gate.release(self._address)
            self._address = None

    def _body_arrived(self) -> None:
        if self._waiting_for is Refusal.BODY:
            self._disarm()

    def _response_finished(self, task: asyncio.Task[Any]) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._arm(self._limits.header_timeout, Refusal.HEADERS)

    def _arm(self, seconds: float, waiting_for: Refusal) -> None:
        self._disarm()
        self._waiting_for = waiting_for
        self._deadline = self._loop().call_later(max(seconds, 0.0), self._too_late)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        self._deadline, self._waiting_for, self._body = None, None, None

    def _too_late(self) -> None:
        waiting_for, body, transport, address = self._waiting_for, self._body, self._transport, self._address
        self._deadline, self._waiting_for, self._body = None, None, None
        if transport is None or address is None or waiting_for is None:
            return
        if waiting_for is Refusal.HEADERS and self._requests and not self._next_request_begun:
            transport.close()  # an idle keep-alive connection, not a late request: nothing to report
            return
        if body is not None:  # the handler waiting for it fails quietly, as for a request timeout
            body.set_exception(web.HTTPRequestTimeout())
        transport.write(plain_response(waiting_for, address))
        transport.close()
        self._gate.cut(address, waiting_for)


#: accept() errors that mean the process is out of descriptors or memory: wait, as asyncio's own servers do.
ACCEPT_RESOURCE_ERRORS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


async def listening_sockets(host: str | None, port: int) -> list[socket.socket]:
    """Non-blocking sockets listening on ``host:port``, one per address it resolves to (IPv6 ones IPv6 only)."""
    addresses = await asyncio.get_running_loop().getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                                                             flags=socket.AI_PASSIVE)
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, _, address in addresses:
            listening = socket.socket(family, kind, proto)
            sockets.append(listening)
            listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                listening.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            listening.bind(address)
            listening.listen(128)
            listening.setblocking(False)
    except OSError:
        for listening in sockets:
            listening.close()
        raise
    return sockets


async def accepted(listening: socket.socket, what: str) -> AsyncIterator[tuple[socket.socket, IPAddress | None]]:
    """Each connection accepted on ``listening`` with its peer's address, until the socket is closed.

    Out of descriptors or memory, it logs and waits a second (as asyncio's own servers do); a peer
    that gave up before it was accepted is skipped. ``what`` names the listener in the log.
    """
    loop = asyncio.get_running_loop()
    while True:
        try:
            client, peername = await loop.sock_accept(listening)
        except OSError as error:
            if listening.fileno() < 0:
                return  # closed: the listener is stopping
            if error.errno in ACCEPT_RESOURCE_ERRORS:
                log.error("cannot accept %s connections (%s); trying again in a second", what, error.strerror)
                await asyncio.sleep(1.0)
            continue
        yield client, peer_address(peername)


class GuardedSite(web.BaseSite):
    """A TCP listener for an :class:`~aiohttp.web.AppRunner` that admits or refuses each connection as it accepts it."""

    __slots__ = ("gate", "_host", "_port", "_sockets", "_tasks", "_connections")

    def __init__(self, runner: web.BaseRunner, host: str, port: int, gate: ConnectionGate,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        super().__init__(runner, ssl_context=ssl_context)
        self.gate = gate
        self._host = host
        self._port = port
        self._sockets: list[socket.socket] = []
        self._tasks: set[asyncio.Task[None]] = set()  # accept loops, and connections being set up
        self._connections: dict[RequestHandler, GuardedConnection] = {}
        server = self._server_factory()
        handle = server.request_handler

        async def handle_request(request: BaseRequest) -> web.StreamResponse:
            connection = self._connections.get(request.protocol)
            if connection is not None:
                connection.request_started(request)
            return await handle(request)

        server.request_handler = handle_request

    @property
    def name(self) -> str:
        scheme = "https" if self._ssl_context else "http"
        return f"{scheme}://[{self._host}]:{self.port}" if ":" in self._host else f"{scheme}://{self._host}:{self.port}"

    @property
    def port(self) -> int:
        """The bound port (the configured one until started)."""
        return int(self._sockets[0].getsockname()[1]) if self._sockets else self._port

    async def start(self) -> None:
        await super().start()
        self._sockets.extend(await listening_sockets(self._host, self._port))
        for listening in self._sockets:
            self._spawn(self._accept(listening))

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for listening in self._sockets:
            listening.close()
        await super().stop()

    def _server_factory(self) -> web.Server:
        server = self._runner.server
        assert server is not None
        return server

    def new_handler(self, connection: GuardedConnection) -> RequestHandler:
        handler = self._server_factory()()
        self._connections[handler] = connection
        return handler

    def forget(self, handler: RequestHandler) -> None:
        self._connections.pop(handler, None)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _accept(self, listening: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        async for client, address in accepted(listening, "HTTP"):
            client.setblocking(False)
            refusal = self.gate.admit(address)
            if refusal is not None or address is None:
                if self._ssl_context is None:  # under TLS nothing can be said before a handshake
                    with contextlib.suppress(OSError):
                        client.send(plain_response(refusal or Refusal.NETWORK, address))
                client.close()
                continue
            self._spawn(self._connect(client, GuardedConnection(self, address, loop.time())))

    async def _connect(self, client: socket.socket, connection: GuardedConnection) -> None:
        """Set an admitted connection up (TLS handshake included); the socket is the transport's from here on."""
        handshake_timeout = self.gate.policy.limits.header_timeout if self._ssl_context is not None else None
        try:
            await asyncio.get_running_loop().connect_accepted_socket(lambda: connection, client, ssl=self._ssl_context,
                                                                     ssl_handshake_timeout=handshake_timeout)
        except (OSError, ssl.SSLError) as error:
            log.debug("a TLS handshake failed: %r", error)
        finally:
            connection.handshake_ended()
