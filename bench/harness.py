"""What every figure stands on: the replay servers, the proxies in front of them, and the ways in.

A :class:`Route` is how the viewer reaches a replay server: through deskgate (a gateway
process, after logging in), through websockify, or directly over TCP. The
:class:`Harness` owns every server and process of a run and stops them all on exit,
also on Ctrl-C.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import aiohttp

from bench.capture_file import Capture
from bench.client import ReplayViewer, Transport, connect_tcp, connect_websocket
from bench.deployment import BenchUser, add_users, http_session, log_in, write_config
from bench.processes import ManagedProcess, start_gateway_process, start_websockify
from bench.replay import Pace, ReplayServer


class Route(Protocol):
    name: str

    async def connect(self, http: aiohttp.ClientSession) -> Transport: ...

    def cpu_seconds(self) -> float:
        """CPU time of the process in the middle (0 for none)."""
        ...

    def memory_bytes(self) -> int: ...


@dataclass(slots=True)
class GatewayRoute:
    """``/ws/vnc/<target>`` of a gateway process; the HTTP session must have logged in."""

    name: str
    process: ManagedProcess
    url: str
    target: str

    async def connect(self, http: aiohttp.ClientSession) -> Transport:
        ws_url = self.url.replace("http", "ws", 1)
        return await connect_websocket(http, f"{ws_url}/ws/vnc/{self.target}", origin=self.url)

    def cpu_seconds(self) -> float:
        return self.process.cpu_seconds()

    def memory_bytes(self) -> int:
        return self.process.memory_bytes()


@dataclass(slots=True)
class WebsockifyRoute:
    name: str
    process: ManagedProcess
    url: str

    async def connect(self, http: aiohttp.ClientSession) -> Transport:
        return await connect_websocket(http, self.url)

    def cpu_seconds(self) -> float:
        return self.process.cpu_seconds()

    def memory_bytes(self) -> int:
        return self.process.memory_bytes()


@dataclass(slots=True)
class DirectRoute:
    name: str
    port: int

    async def connect(self, http: aiohttp.ClientSession) -> Transport:
        return await connect_tcp(self.port)

    def cpu_seconds(self) -> float:
        return 0.0

    def memory_bytes(self) -> int:
        return 0


@dataclass(slots=True)
class GatewayDeployment:
    """A gateway process with its config, its replay targets and a logged-in HTTP session."""

    process: ManagedProcess
    url: str
    workdir: Path
    recording: bool
    recording_switch: bool
    http: aiohttp.ClientSession
    users: list[BenchUser]

    def route(self, target: str, name: str = "deskgate") -> GatewayRoute:
        return GatewayRoute(name, self.process, self.url, target)

    @property
    def recordings(self) -> Path:
        return self.workdir / "recordings"


class Harness:
    """Owns the replay servers, processes and sessions of one benchmark run."""

    def __init__(self, workdir: Path | None = None) -> None:
        self._stack = contextlib.AsyncExitStack()
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._workdir = workdir

    @property
    def workdir(self) -> Path:
        assert self._workdir is not None
        return self._workdir

    async def __aenter__(self) -> Harness:
        if self._workdir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="deskgate-bench-")
            self._stack.callback(self._tmp.cleanup)
            self._workdir = Path(self._tmp.name)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._stack.aclose()

    async def replay(self, capture: Capture, pace: Pace, *, speed: float = 1.0,
                     passes: int | None = None) -> ReplayServer:
        server = ReplayServer(capture, pace, speed=speed, passes=passes)
        await server.start()
        self._stack.push_async_callback(server.stop)
        return server

    async def gateway(self, name: str, targets: dict[str, int], *, record: bool = True,
                      cpus: Sequence[int] | None = None, user_count: int = 1) -> GatewayDeployment:
        """A gateway process proxying ``targets`` (``bench-*`` names), logged in as the first operator."""
        workdir = self.workdir / name
        config = write_config(workdir, targets)
        users = add_users(workdir, user_count)
        process, url, switch = await start_gateway_process(config, workdir / "gateway.log", record=record, cpus=cpus)
        self._stack.push_async_callback(process.stop)
        http = http_session()
        self._stack.push_async_callback(http.close)
        await log_in(http, url, users[0])
        return GatewayDeployment(process, url, workdir, record, switch, http, users)

    async def websockify(self, target_port: int, name: str = "websockify", *, cpus: Sequence[int] | None = None,
                         record: Path | None = None) -> WebsockifyRoute:
        process, url = await start_websockify(target_port, self.workdir / f"{name}-{target_port}.log", cpus=cpus,
                                              record=record)
        self._stack.push_async_callback(process.stop)
        return WebsockifyRoute("websockify", process, url)


@contextlib.asynccontextmanager
async def viewer_session(route: Route, http: aiohttp.ClientSession, capture: Capture,
                         start_index: int = 1) -> AsyncIterator[ReplayViewer]:
    """A viewer connected through ``route`` and past the handshake; closed on exit."""
    viewer = ReplayViewer(await route.connect(http), capture)
    try:
        await viewer.open(start_index)
        yield viewer
    finally:
        await viewer.transport.close()
