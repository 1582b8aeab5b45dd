"""What every figure stands on: the replay servers, the proxies in front of them, and the ways in.

A :class:`Route` is how the viewer reaches a replay server: through deskgate (a gateway
process, after logging in), through websockify, or directly over TCP. A :class:`Harness`
owns every server and process it started and stops them all on exit, also on Ctrl-C;
each figure runs in a harness of its own, so nothing idles in the background of the next.

The proxy under measurement runs on one core (:data:`PROXY_CPUS`), the load — replay
servers and viewers, all in the benchmark's own process — on the others (:data:`LOAD_CPUS`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import aiohttp

from bench.capture_file import Capture
from bench.client import ReplayViewer, Transport, connect_tcp, connect_websocket
from bench.deployment import BenchUser, add_users, http_session, log_in, write_config
from bench.processes import BENCH_ROOT, ManagedProcess, start_gateway_process, start_websockify
from bench.replay import Pace, ReplayServer
from recorder.journal import JOURNAL_SUFFIX
from recorder.seal import seal_path

_CPUS = sorted(os.sched_getaffinity(0))
#: One core for the proxy under measurement; None (no pinning) on a single-core machine.
PROXY_CPUS: list[int] | None = _CPUS[-1:] if len(_CPUS) > 1 else None
#: The cores left for the benchmark's own process (replay servers and viewers).
LOAD_CPUS: list[int] | None = _CPUS[:-1] if len(_CPUS) > 1 else None
_SEAL_TIMEOUT = 60.0


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
    http: aiohttp.ClientSession
    users: list[BenchUser]

    def route(self, target: str, name: str = "deskgate") -> GatewayRoute:
        return GatewayRoute(name, self.process, self.url, target)

    def journals(self) -> list[Path]:
        return sorted((self.workdir / "recordings").rglob(f"*{JOURNAL_SUFFIX}"))

    async def sealed_journals(self, count: int) -> list[Path]:
        """Wait (bounded) until ``count`` journals exist and every one is sealed; return them."""
        async with asyncio.timeout(_SEAL_TIMEOUT):
            while True:
                self.process.check_alive()
                journals = self.journals()
                if len(journals) >= count and all(seal_path(journal).exists() for journal in journals):
                    return journals
                await asyncio.sleep(0.05)

    async def discard_recordings(self, count: int) -> None:
        """Wait until the ``count`` sessions so far are sealed (no work left in the gateway), then delete them."""
        for journal in await self.sealed_journals(count):
            journal.unlink()
            seal_path(journal).unlink()


class Harness:
    """Owns the replay servers, processes and sessions of one figure; see the module docstring."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self._stack = contextlib.AsyncExitStack()

    async def __aenter__(self) -> Harness:
        self.workdir.mkdir(parents=True, exist_ok=True)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._stack.aclose()

    async def replay(self, capture: Capture, pace: Pace, *, passes: int | None = None) -> ReplayServer:
        server = ReplayServer(capture, pace, passes=passes)
        await server.start()
        self._stack.push_async_callback(server.stop)
        return server

    async def gateway(self, name: str, targets: dict[str, int], *, recording: bool = True,
                      user_count: int = 1, tree: Path = BENCH_ROOT, writers_apart: bool = True) -> GatewayDeployment:
        """A gateway process (of ``tree``) on :data:`PROXY_CPUS` proxying ``targets`` (``bench-*``), logged in.

        With ``writers_apart`` its journal writer threads run on :data:`LOAD_CPUS` (``storage.writer_cpus``),
        away from its event loop, as a deployment with cores to spare runs them; a ``tree`` other than this
        one (a baseline) is not given the key.
        """
        workdir = self.workdir / name
        apart = writers_apart and tree == BENCH_ROOT
        config = write_config(workdir, targets, writer_cpus=LOAD_CPUS if apart else None)
        users = add_users(workdir, user_count)
        process, url = await self.serve(config, recording=recording, tree=tree)
        http = http_session()
        self._stack.push_async_callback(http.close)
        code = users[0].next_code()
        assert code is not None  # a new user can always log in
        await log_in(http, url, users[0], code)
        return GatewayDeployment(process, url, workdir, http, users)

    async def serve(self, config: Path, *, recording: bool = True,
                    tree: Path = BENCH_ROOT) -> tuple[ManagedProcess, str]:
        """A gateway process (of ``tree``) on :data:`PROXY_CPUS` serving ``config``; returns it and its URL."""
        process, url = await start_gateway_process(config, config.with_name("gateway.log"), recording=recording,
                                                   cpus=PROXY_CPUS, tree=tree)
        self._stack.push_async_callback(process.stop)
        return process, url

    async def websockify(self, target_port: int, name: str = "websockify", *,
                         record: Path | None = None) -> WebsockifyRoute:
        """websockify on :data:`PROXY_CPUS` in front of ``target_port``."""
        process, url = await start_websockify(target_port, self.workdir / f"{name}.log", cpus=PROXY_CPUS,
                                              record=record)
        self._stack.push_async_callback(process.stop)
        return WebsockifyRoute("websockify", process, url)

    async def http(self) -> aiohttp.ClientSession:
        """An HTTP session for routes that need no login (websockify, direct)."""
        http = http_session()
        self._stack.push_async_callback(http.close)
        return http


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


def rotated(items: Sequence[str], run: int) -> list[str]:
    """``items`` starting at ``run`` (mod len): alternating runs start with a different route each time."""
    shift = run % len(items)
    return [*items[shift:], *items[:shift]]
