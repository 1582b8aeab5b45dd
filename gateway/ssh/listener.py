"""The native SSH listener (``listen.ssh``): accept, admit by network, then run asyncssh on the connection.

The listener accepts connections itself and admits each through a
:class:`~gateway.web.listener.ConnectionGate` built from the config in force (``network.allow``,
``network.max_connections`` and ``max_connections_per_source``; listener label ``ssh``): a peer
outside the allow list is closed as it is accepted, before the gateway writes a byte of its SSH
banner, counted (``ip_denied_total``, ``connections_refused_total{listener="ssh"}``) and audited
(``network.denied``) like the web listener's refusals. Trusted proxies have no meaning here.
An admitted socket is handed to :func:`asyncssh.run_server` with the gateway's host key
(``listen.ssh_host_key``, created on first start), the login deadline, keepalives, and every
forwarding off; :mod:`gateway.ssh.server` signs the person in and :mod:`gateway.ssh.shell` runs
their terminal.

:func:`ssh_listener_context` (an ``app.cleanup_ctx`` entry, last) starts it with the app and
stops it at shutdown: no new connections, live terminals asked to end, their ends awaited (so
their close is audited before the database closes), then every connection closed. While the
node drains the listener stays open, so that live terminals go on, and new ones are refused
with the drain's reason (:mod:`gateway.terminal_launch`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import tempfile
import weakref
from collections.abc import AsyncIterator, Coroutine
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path
from typing import Any

import asyncssh
from aiohttp import web
from sqlalchemy.exc import SQLAlchemyError

from gateway.config import Address
from gateway.i18n import Translator, translator
from gateway.session_watch import CloseCode, SessionEnded
from gateway.ssh.channel import SshChannelTerminal
from gateway.ssh.server import GatewaySshServer
from gateway.ssh.shell import serve_shell
from gateway.web.keys import AUDIT, LIVE_SESSIONS, METRICS, SETTINGS
from gateway.web.listener import ConnectionGate, ListenerPolicy, accepted, listening_sockets
from gateway.web.security import connection_refusals

log = logging.getLogger(__name__)

#: Seconds a client has from connecting to signed in (the SSH handshake and both prompts).
LOGIN_TIMEOUT = 60.0
#: Seconds between keepalives to a quiet client: a vanished one is noticed and its terminal ended.
KEEPALIVE_INTERVAL = 30.0
#: Seconds shutdown waits for the live terminals' ends before closing the connections.
SHUTDOWN_GRACE = 10.0
SERVER_VERSION = "deskgate"


def load_or_create_host_key(path: Path) -> asyncssh.SSHKey:
    """The host key in ``path``; a new Ed25519 key is written there first (0600, with a warning) if there is none.

    Written to a temporary file and linked into place, so that a racing process reads either
    nothing or the whole key.
    """
    try:
        return asyncssh.read_private_key(path)
    except FileNotFoundError:
        pass
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # mode 0600
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(asyncssh.generate_private_key("ssh-ed25519").export_private_key("openssh"))
            file.flush()
            os.fsync(file.fileno())
        try:
            os.link(temporary, path)
            log.warning("created a new SSH host key; give every gateway node this same file, and tell users "
                        "its fingerprint", extra={"ctx": {"path": str(path)}})
        except FileExistsError:
            pass
    finally:
        os.unlink(temporary)
    return asyncssh.read_private_key(path)


class SshListener:
    """Accepts native SSH clients on ``address`` (see the module docstring)."""

    def __init__(self, app: web.Application, address: Address, host_key: asyncssh.SSHKey, *,
                 login_timeout: float = LOGIN_TIMEOUT, keepalive_interval: float = KEEPALIVE_INTERVAL) -> None:
        self.app = app
        self.address = address
        self._host_key = host_key
        self._login_timeout = login_timeout
        self._keepalive_interval = keepalive_interval
        self._gate = ConnectionGate(self._policy(), app[METRICS], connection_refusals(app))
        self._sockets: list[socket.socket] = []
        self._tasks: set[asyncio.Task[Any]] = set()  # accept loops, connections, audits
        self._shells: set[asyncio.Task[Any]] = set()
        self._accepting: set[asyncio.Task[Any]] = set()
        self._servers: weakref.WeakSet[GatewaySshServer] = weakref.WeakSet()  # every connection, signed in or not

    @property
    def port(self) -> int:
        """The bound port (the configured one until started)."""
        return int(self._sockets[0].getsockname()[1]) if self._sockets else self.address.port

    def _policy(self) -> ListenerPolicy:
        network = self.app[SETTINGS].current.config.network
        return ListenerPolicy("ssh", network.allow, (), network.connections)

    async def start(self) -> None:
        self._sockets.extend(await listening_sockets(self.address.host, self.address.port))
        for listening in self._sockets:
            self.spawn(self._accept(listening), self._accepting)
        log.info("SSH listener open", extra={"ctx": {"host": self.address.host, "port": self.port,
                                                     "fingerprint": self._host_key.get_fingerprint()}})

    async def close(self) -> None:
        """Stop accepting, end the live terminals (their ends awaited), close every connection."""
        for task in list(self._accepting):
            task.cancel()
        if self._accepting:
            await asyncio.wait(self._accepting)
        for listening in self._sockets:
            listening.close()
        registry = self.app[LIVE_SESSIONS]
        for session in registry:
            if session.protocol == "ssh":
                registry.terminate(session.id, "the gateway is shutting down")
        if self._shells:
            await asyncio.wait(self._shells, timeout=SHUTDOWN_GRACE)
        for server in list(self._servers):
            if server.connection is not None:
                server.connection.close()
        if self._tasks:  # the connections' ends, and refusals being audited
            await asyncio.wait(self._tasks, timeout=SHUTDOWN_GRACE)
        for task in list(self._tasks):
            task.cancel()

    def spawn(self, work: Coroutine[Any, Any, Any], into: set[asyncio.Task[Any]] | None = None) -> None:
        tasks = self._tasks if into is None else into
        task = asyncio.get_running_loop().create_task(work)
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    async def _accept(self, listening: socket.socket) -> None:
        async for client, address in accepted(listening, "SSH"):
            self._gate.policy = self._policy()  # the network section in force (a reload changes it)
            if address is None or self._gate.admit(address) is not None:
                client.close()  # before a byte of the SSH banner
                continue
            client.setblocking(False)
            self.spawn(self._serve(client, address))

    async def _serve(self, client: socket.socket, address: IPv4Address | IPv6Address) -> None:
        try:
            connection = await asyncssh.run_server(
                client, server_factory=lambda: self._new_server(address), server_host_keys=[self._host_key],
                server_version=SERVER_VERSION, login_timeout=self._login_timeout,
                keepalive_interval=self._keepalive_interval, line_editor=False, agent_forwarding=False,
                x11_forwarding=False, allow_scp=False, encoding=None)
        except (asyncssh.Error, OSError, TimeoutError) as error:
            log.info("SSH connection ended before sign-in: %s", error, extra={"ctx": {"source": str(address)}})
            client.close()
            self._gate.release(address)
            return
        try:
            await connection.wait_closed()
        finally:
            self._gate.release(address)

    def _new_server(self, address: IPv4Address | IPv6Address) -> GatewaySshServer:
        server = GatewaySshServer(self, address)
        self._servers.add(server)
        return server

    # -- what connections ask of it (gateway.ssh.server.ConnectionHub) ---------------------------------------

    def translator(self) -> Translator:
        return translator(self.app[SETTINGS].current.config.ui.language)

    def report_refusal(self, kind: str, detail: str, user: str | None, source: IPv4Address | IPv6Address) -> None:
        self.app[METRICS].ssh_refusals_total.labels(kind=kind).inc()
        log.warning("SSH request refused", extra={"ctx": {"kind": kind, "detail": detail, "user": user,
                                                          "source": str(source)}})
        self.spawn(self._audit_refusal(kind, detail, user, source))

    async def _audit_refusal(self, kind: str, detail: str, user: str | None,
                             source: IPv4Address | IPv6Address) -> None:
        try:
            await self.app[AUDIT].record("ssh.refused", user=user, source=source, target=None, outcome="refused",
                                         reason=f"{kind} is not allowed through the gateway", kind=kind,
                                         detail=detail)
        except SQLAlchemyError as error:  # still refused; the log line is the record
            log.error("cannot audit a refused SSH request: %s", error)

    def start_shell(self, server: GatewaySshServer, terminal: SshChannelTerminal) -> None:
        identity = server.identity
        assert identity is not None  # asyncssh opens sessions only after authentication
        if server.shell_started:
            self.report_refusal("session", "a second shell on one connection", identity.username, server.source)
            self.spawn(terminal.close(SessionEnded(CloseCode.PROTOCOL_ERROR, "one terminal per SSH connection")))
            return
        server.shell_started = True

        async def shell() -> None:
            try:
                await serve_shell(self.app, identity, server.source, server.requested_target, terminal)
            except Exception:
                log.exception("SSH terminal failed", extra={"ctx": {"user": identity.username}})
            finally:
                if server.connection is not None:
                    server.connection.close()

        self.spawn(shell(), self._shells)


SSH_LISTENER = web.AppKey("ssh_listener", SshListener)


async def ssh_listener_context(app: web.Application) -> AsyncIterator[None]:
    """``app.cleanup_ctx`` entry, last: the SSH listener while the app runs, when ``listen.ssh`` is set."""
    listen = app[SETTINGS].current.config.listen
    if listen.ssh is None:
        yield
        return
    listener = app[SSH_LISTENER] = SshListener(app, listen.ssh, load_or_create_host_key(listen.ssh_host_key))
    await listener.start()
    try:
        yield
    finally:
        await listener.close()
