"""How the gateway reaches a target: directly, or through an SSH jump host (``via:`` on the target).

A target with ``via: jump-01`` is reached through an asyncssh connection to the ssh target
``jump-01`` (its credentials and ``known_hosts``): a VNC target's TCP stream is a direct-tcpip
channel on it (:func:`open_tcp`), an SSH target's connection is tunnelled through it
(:meth:`JumpHosts.connection` as asyncssh's ``tunnel``). :class:`JumpHosts` keeps one connection
per jump host, shared by every session through it, opened at first use, opened again when it
dropped, closed when no session has used it for a while (and when the gateway stops). A jump host that is down, refuses the gateway's
credentials or does not prove its identity refuses the session with :class:`TargetRefused`
naming the jump host.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from pathlib import Path

import asyncssh

from base.metrics import Metrics
from gateway.config import Target
from gateway.config.model import KNOWN_HOSTS_UNCHECKED
from gateway.errors import TargetRefused
from gateway.target_stream import TargetStream

log = logging.getLogger(__name__)

#: Seconds between keepalives on a jump connection: a jump host that vanished is noticed, and replaced.
JUMP_KEEPALIVE = 30.0
#: Seconds a jump connection no session uses is kept open (for the next session) before it is closed.
JUMP_IDLE_TIMEOUT = 300.0


@dataclass(frozen=True, slots=True)
class SshEndpoint:
    """Where and as whom the gateway opens an SSH connection (a terminal target or a jump host).

    ``known_hosts`` None means the gateway user's ``~/.ssh/known_hosts``; ``"none"`` that the
    host key is not checked (``known_hosts: none``, logged at every connection). ``via``: the
    jump host it is reached through.
    """

    name: str
    host: str
    port: int
    username: str
    key_file: Path | None
    password_file: Path | None
    known_hosts: Path | str | None
    via: SshEndpoint | None = None

    @classmethod
    def from_target(cls, target: Target, targets: Mapping[str, Target] | None = None) -> SshEndpoint:
        """The endpoint of ssh ``target``; ``targets`` (the config's) resolve its ``via``."""
        if target.protocol != "ssh" or target.username is None:
            raise ValueError(f"target {target.name} is not an ssh target with a username")
        return cls(target.name, target.host, target.port, target.username, target.key_file, target.password_file,
                   target.known_hosts, jump_endpoint(target, targets))


def jump_endpoint(target: Target, targets: Mapping[str, Target] | None) -> SshEndpoint | None:
    """The jump host ``target`` is reached through, if any (config validation guarantees it is an ssh target)."""
    if target.via is None:
        return None
    if targets is None or target.via not in targets:
        raise ValueError(f"target {target.name} is reached via {target.via}, which is not configured")
    jump = targets[target.via]
    if jump.via is not None:
        raise ValueError(f"jump host {jump.name} is itself reached via {jump.via}; chains are not supported")
    return SshEndpoint.from_target(jump)


@dataclass(frozen=True, slots=True)
class SshCredentials:
    known_hosts: asyncssh.SSHKnownHosts | None
    client_keys: list[asyncssh.SSHKey]
    password: str | None


def read_credentials(endpoint: SshEndpoint, role: str = "") -> SshCredentials:
    """Known hosts, client keys and password for ``endpoint``, read from their files (blocking).

    ``role`` prefixes its name in messages (e.g. ``"jump host "``); TargetRefused when unreadable.
    """
    known_hosts: asyncssh.SSHKnownHosts | None = None
    if endpoint.known_hosts == KNOWN_HOSTS_UNCHECKED:
        log.warning("SSH host key NOT CHECKED (known_hosts: none): the connection may be intercepted",
                    extra={"ctx": {"host": endpoint.name}})
    else:
        path = Path(endpoint.known_hosts or Path.home() / ".ssh" / "known_hosts")
        try:
            known_hosts = asyncssh.read_known_hosts(str(path))
        except OSError as exc:
            raise TargetRefused(f"the gateway has no known host keys for {role}{endpoint.name} ({path}: "
                                f"{exc.strerror}); tell your administrator to add its key (ssh-keyscan -p "
                                f"{endpoint.port} {endpoint.host})", reason="host_key") from exc
    client_keys: list[asyncssh.SSHKey] = []
    password = None
    try:
        if endpoint.key_file is not None:
            client_keys.append(asyncssh.read_private_key(str(endpoint.key_file)))
        if endpoint.password_file is not None:
            password = endpoint.password_file.read_text().rstrip("\r\n")
    except (OSError, asyncssh.KeyImportError) as exc:
        raise TargetRefused(f"the gateway cannot read its credentials for {role}{endpoint.name} ({exc}); "
                            "tell your administrator") from exc
    return SshCredentials(known_hosts, client_keys, password)


async def ssh_connect(endpoint: SshEndpoint, tunnel: asyncssh.SSHClientConnection | None = None, *,
                      role: str = "", keepalive: float = 0.0) -> asyncssh.SSHClientConnection:
    """Connect and authenticate to ``endpoint`` (through ``tunnel``); TargetRefused says what failed."""
    credentials = await asyncio.to_thread(read_credentials, endpoint, role)
    name = f"{role}{endpoint.name}"
    try:
        return await asyncssh.connect(
            endpoint.host, endpoint.port, tunnel=tunnel, username=endpoint.username,
            known_hosts=credentials.known_hosts, client_keys=credentials.client_keys,
            password=credentials.password, agent_path=None, config=[], keepalive_interval=keepalive,
            preferred_auth="publickey,password" if credentials.password is not None else "publickey",
        )
    except asyncssh.HostKeyNotVerifiable as exc:
        raise TargetRefused(
            f"{name} did not prove its identity: its host key is unknown or has changed ({exc.reason}). "
            "The session was refused; tell your administrator to check its key in its known_hosts.",
            reason="host_key") from exc
    except asyncssh.PermissionDenied as exc:
        raise TargetRefused(f"{name} refused the gateway's credentials for {endpoint.username}; "
                            "tell your administrator", reason="auth") from exc
    except (OSError, asyncssh.Error) as exc:
        detail = exc.reason if isinstance(exc, asyncssh.Error) else f"{exc.__class__.__name__}: {exc}"
        raise TargetRefused(f"{name} is unreachable ({detail}); try again later or tell your administrator") from exc


async def open_ssh(endpoint: SshEndpoint, jumps: JumpHosts | None) -> asyncssh.SSHClientConnection:
    """An authenticated connection to ``endpoint``: direct, or tunnelled through its jump host (lent from
    ``jumps`` until the connection closes); TargetRefused says what failed."""
    if endpoint.via is None:
        return await ssh_connect(endpoint)
    if jumps is None:
        raise TargetRefused(f"{endpoint.name} is reached via {endpoint.via.name}, but this gateway component "
                            "has no jump hosts")
    tunnel = await jumps.connection(endpoint.via, endpoint.name)
    try:
        connection = await ssh_connect(endpoint, tunnel)
    except BaseException:
        jumps.release(endpoint.via)
        raise
    jumps.release_when(endpoint.via, connection.wait_closed())
    return connection


class JumpHosts:
    """One shared SSH connection per jump host: opened at first use, opened again when it dropped,
    closed once no session has used it for ``idle_timeout`` seconds.

    :meth:`connection` lends the connection to a session; :meth:`release_when` (or :meth:`release`,
    when the session failed to start) gives it back.
    """

    def __init__(self, metrics: Metrics, keepalive: float = JUMP_KEEPALIVE,
                 idle_timeout: float = JUMP_IDLE_TIMEOUT) -> None:
        self._metrics = metrics
        self._keepalive = keepalive
        self._idle_timeout = idle_timeout
        self._connections: dict[SshEndpoint, asyncssh.SSHClientConnection] = {}
        self._locks: dict[SshEndpoint, asyncio.Lock] = {}
        self._users: dict[SshEndpoint, int] = {}
        self._idle: dict[SshEndpoint, asyncio.TimerHandle] = {}
        self._watchers: set[asyncio.Task[None]] = set()

    async def connection(self, jump: SshEndpoint, target: str) -> asyncssh.SSHClientConnection:
        """The open connection to ``jump``, lent to a session on ``target`` (TargetRefused naming both,
        counted, when it cannot be had)."""
        async with self._locks.setdefault(jump, asyncio.Lock()):
            current = self._connections.get(jump)
            if current is None or current.is_closed():
                current = self._connections[jump] = await self._connect(jump, target)
            self._users[jump] = self._users.get(jump, 0) + 1
            if (timer := self._idle.pop(jump, None)) is not None:
                timer.cancel()
            return current

    async def _connect(self, jump: SshEndpoint, target: str) -> asyncssh.SSHClientConnection:
        try:
            connection = await ssh_connect(jump, role="jump host ", keepalive=self._keepalive)
        except TargetRefused as refusal:
            self._metrics.jump_host_failures_total.labels(reason=refusal.reason).inc()
            log.warning("jump host refused", extra={"ctx": {"jump": jump.name, "reason": refusal.reason,
                                                            "error": str(refusal)}})
            raise TargetRefused(f"cannot open {target}: {refusal}", reason=refusal.reason) from refusal
        self._metrics.jump_host_connections_total.inc()
        log.info("jump host connected", extra={"ctx": {"jump": jump.name}})
        return connection

    def release_when(self, jump: SshEndpoint, done: Awaitable[object]) -> None:
        """Give the connection to ``jump`` back once ``done`` (the session's channel or tunnelled connection
        closing) completes."""
        async def watch() -> None:
            try:
                await done
            finally:
                self.release(jump)

        task = asyncio.create_task(watch())
        self._watchers.add(task)
        task.add_done_callback(self._watchers.discard)

    def release(self, jump: SshEndpoint) -> None:
        """Give the connection to ``jump`` back; the last session out starts its idle timer."""
        self._users[jump] -= 1
        if self._users[jump] == 0:
            self._idle[jump] = asyncio.get_running_loop().call_later(self._idle_timeout, self._close_idle, jump)

    def _close_idle(self, jump: SshEndpoint) -> None:
        self._idle.pop(jump, None)
        if self._users.get(jump) == 0 and (connection := self._connections.pop(jump, None)) is not None:
            log.info("idle jump host connection closed", extra={"ctx": {"jump": jump.name}})
            connection.close()

    async def close(self) -> None:
        """Close every jump connection (the sessions through them end)."""
        for timer in self._idle.values():
            timer.cancel()
        for task in self._watchers:
            task.cancel()
        connections, self._connections = list(self._connections.values()), {}
        for connection in connections:
            connection.close()
        for connection in connections:
            await connection.wait_closed()


class _ChannelStream(asyncssh.SSHTCPSession[bytes]):
    """Feeds a direct-tcpip channel into an asyncio stream protocol, so it reads and writes as a TCP stream."""

    def __init__(self, protocol: TargetStream) -> None:
        self._protocol = protocol

    def connection_made(self, chan: asyncssh.SSHTCPChannel[bytes]) -> None:
        self._protocol.connection_made(chan)  # type: ignore[arg-type]

    def connection_lost(self, exc: Exception | None) -> None:
        self._protocol.connection_lost(exc)

    def data_received(self, data: bytes, datatype: asyncssh.DataType) -> None:
        self._protocol.data_received(data)

    def eof_received(self) -> bool:
        return bool(self._protocol.eof_received())

    def pause_writing(self) -> None:
        self._protocol.pause_writing()

    def resume_writing(self) -> None:
        self._protocol.resume_writing()


async def open_tcp(name: str, host: str, port: int, via: SshEndpoint | None,
                   jumps: JumpHosts | None) -> TargetStream:
    """A TCP stream to ``host:port`` (target ``name``): direct, or a channel through jump host ``via``.

    Raises OSError when a direct connection fails, TargetRefused when the jump host fails or
    cannot reach the target.
    """
    if via is None:
        _, stream = await asyncio.get_running_loop().create_connection(TargetStream, host, port)
        return stream
    if jumps is None:
        raise TargetRefused(f"{name} is reached via {via.name}, but this gateway component has no jump hosts")
    connection = await jumps.connection(via, name)
    stream = TargetStream()
    try:
        await connection.create_connection(lambda: _ChannelStream(stream), host, port, encoding=None)
    except BaseException as exc:
        jumps.release(via)
        if not isinstance(exc, (OSError, asyncssh.Error)):
            raise
        detail = exc.reason if isinstance(exc, asyncssh.Error) else str(exc)
        raise TargetRefused(f"jump host {via.name} cannot reach {name} at {host}:{port} ({detail}); "
                            "try again later or tell your administrator") from exc
    jumps.release_when(via, stream.wait_closed())
    return stream
