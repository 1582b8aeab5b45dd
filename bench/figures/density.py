"""Density: how many office sessions at recorded pace one gateway core holds, and memory per session.

A run starts a fresh gateway (recording) and adds sessions level by level (:data:`LEVELS`).
Each session replays the office capture at recorded pace from its own point of the loop and
presses a key every ``PROBE_INTERVAL``. One more session, straight to the replay server over
TCP, presses a key every ``DIRECT_PROBE_INTERVAL``: it measures the benchmark process's own
delay under the same load, which is subtracted, so that "added" latency is the gateway's.
A level holds when, over ``WINDOW`` seconds after ``SETTLE``, the p99 added latency is under
``MAX_ADDED_P99_MS`` and no key press went unanswered; the run's figure is the largest level
that holds, and memory per session is the gateway's PSS growth over its idle PSS there.

websockify's memory per connection is measured the same way, with ``PEER_CONNECTIONS``
sessions (it forks a process per connection; PSS counts their shared pages once). With
``--baseline REV``, each run also ramps the gateway of that commit (:mod:`bench.baseline`).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import asdict, dataclass
from pathlib import Path

import aiohttp

from bench.baseline import Baseline
from bench.capture_file import Capture
from bench.client import FollowResult
from bench.harness import DirectRoute, Harness, Route, viewer_session
from bench.replay import Pace
from bench.report import Figure, Measured, Summary, percentile

LEVELS = (10, 20, 30, 40, 50, 60, 80, 100, 120, 150, 200, 250, 300, 400, 500)
MAX_ADDED_P99_MS = 20.0
PROBE_INTERVAL = 0.5
DIRECT_PROBE_INTERVAL = 0.01
SETTLE = 1.0
WINDOW = 5.0
PEER_CONNECTIONS = 25
TARGET = "bench-desk"
_GOLDEN = 0.6180339887


@dataclass(frozen=True, slots=True)
class Level:
    sessions: int
    added_p99_ms: float
    gateway_p99_ms: float
    direct_p99_ms: float
    lost_key_presses: int
    gateway_cpu_share: float
    memory_per_session: float  # bytes of PSS over the idle gateway's

    @property
    def holds(self) -> bool:
        return self.added_p99_ms < MAX_ADDED_P99_MS and self.lost_key_presses == 0


class SessionPool:
    """Viewers following a recorded-pace replay, each from its own point of the loop, until closed."""

    def __init__(self, route: Route, http: aiohttp.ClientSession, capture: Capture, probe_interval: float,
                 stack: contextlib.AsyncExitStack) -> None:
        self._route, self._http, self._capture = route, http, capture
        self._probe_interval = probe_interval
        self._stack = stack
        self.results: list[FollowResult] = []

    async def grow(self, count: int) -> None:
        while len(self.results) < count:
            loop_length = len(self._capture.messages) - 1
            start_index = 1 + int(len(self.results) * _GOLDEN * loop_length) % loop_length
            viewer = await self._stack.enter_async_context(
                viewer_session(self._route, self._http, self._capture, start_index))
            result = FollowResult()
            follower = asyncio.create_task(viewer.follow(result, self._probe_interval))
            self._stack.callback(follower.cancel)  # before the viewer closes
            self.results.append(result)

    def take_round_trips(self) -> list[float]:
        """Round trips (ms) since the last call, of every session."""
        taken = [seconds * 1000 for result in self.results for seconds in result.round_trips]
        for result in self.results:
            result.round_trips.clear()
        return taken

    def lost_key_presses(self) -> int:
        return sum(result.lost_echoes() for result in self.results)


async def ramp(workdir: Path, capture: Capture, tree: Path | None = None) -> list[Level]:
    """One run (of this tree's gateway, or ``tree``'s): levels up to the first that does not hold."""
    levels: list[Level] = []
    async with Harness(workdir) as harness, contextlib.AsyncExitStack() as stack:
        replay = await harness.replay(capture, Pace.RECORDED)
        if tree is None:
            gateway = await harness.gateway("gateway", {TARGET: replay.port})
        else:
            gateway = await harness.gateway("gateway", {TARGET: replay.port}, tree=tree)
        process = gateway.process
        direct = SessionPool(DirectRoute("direct", replay.port), await harness.http(), capture,
                             DIRECT_PROBE_INTERVAL, stack)
        await direct.grow(1)
        pool = SessionPool(gateway.route(TARGET), gateway.http, capture, PROBE_INTERVAL, stack)
        idle_memory = process.memory_bytes()
        for count in LEVELS:
            await pool.grow(count)
            await asyncio.sleep(SETTLE)
            pool.take_round_trips()
            direct.take_round_trips()
            cpu_before = process.cpu_seconds()
            await asyncio.sleep(WINDOW)
            process.check_alive()
            gateway_p99 = percentile(pool.take_round_trips() or [float("inf")], 99)
            direct_p99 = percentile(direct.take_round_trips() or [float("inf")], 99)
            level = Level(count, gateway_p99 - direct_p99, gateway_p99, direct_p99, pool.lost_key_presses(),
                          (process.cpu_seconds() - cpu_before) / WINDOW,
                          (process.memory_bytes() - idle_memory) / count)
            levels.append(level)
            if not level.holds:
                break
    return levels


async def websockify_memory(workdir: Path, capture: Capture) -> float:
    """PSS growth of websockify per connection, with :data:`PEER_CONNECTIONS` office sessions."""
    async with Harness(workdir) as harness, contextlib.AsyncExitStack() as stack:
        replay = await harness.replay(capture, Pace.RECORDED)
        websockify = await harness.websockify(replay.port)
        idle_memory = websockify.memory_bytes()
        pool = SessionPool(websockify, await harness.http(), capture, PROBE_INTERVAL, stack)
        await pool.grow(PEER_CONNECTIONS)
        await asyncio.sleep(SETTLE)
        return (websockify.memory_bytes() - idle_memory) / PEER_CONNECTIONS


def _held(ramps: list[list[Level]]) -> tuple[Summary, Summary]:
    """Sessions at the largest level that held, and memory per session there, over the runs."""
    held = [[level for level in levels if level.holds] for levels in ramps]
    density = Summary.of([levels[-1].sessions if levels else 0 for levels in held])
    memory = Summary.of([levels[-1].memory_per_session / 1e6 for levels in held if levels] or [float("nan")])
    return density, memory


async def measure_density(workdir: Path, capture: Capture, runs: int, baseline: Baseline | None = None) -> Measured:
    ramps: list[list[Level]] = []
    baseline_ramps: list[list[Level]] = []
    peer_memory: list[float] = []
    for run in range(runs):
        if baseline is not None and run % 2:  # alternate which goes first
            baseline_ramps.append(await ramp(workdir / f"baseline-{run}", capture, baseline.tree))
        ramps.append(await ramp(workdir / f"density-{run}", capture))
        if baseline is not None and not run % 2:
            baseline_ramps.append(await ramp(workdir / f"baseline-{run}", capture, baseline.tree))
        peer_memory.append(await websockify_memory(workdir / f"websockify-{run}", capture))
    density, memory = _held(ramps)
    failed_cpu = [levels[-1].gateway_cpu_share * 100 for levels in ramps if not levels[-1].holds]
    busy = f"; the gateway used {Summary.of(failed_cpu).text(0)} % of its core at the first level that failed" \
        if failed_cpu else ""
    figures = [
        Figure("density", f"office sessions on one core, {capture.encoding}", "sessions", density, None,
               target_value=100, target_text="≥ 100", digits=0,
               note=f"p99 added latency < {MAX_ADDED_P99_MS:.0f} ms{busy}"),
        Figure("memory_per_session", "memory per session (PSS)", "MB", memory,
               Summary.of([value / 1e6 for value in peer_memory]), "websockify, per connection",
               higher_is_better=False, digits=2),
    ]
    if baseline is not None:
        density_before, memory_before = _held(baseline_ramps)
        figures += [
            Figure("density_vs_baseline", f"office sessions on one core vs {baseline.label}, {capture.encoding}",
                   "sessions", density, density_before, baseline.label, target_ratio=0.95, target_text="≥ 0.95× (not worse)",
                   digits=0),
            Figure("memory_per_session_vs_baseline", f"memory per session (PSS) vs {baseline.label}", "MB", memory,
                   memory_before, baseline.label, higher_is_better=False, digits=2),
        ]
    return Measured(figures, {"ramps": [[asdict(level) for level in levels] for levels in ramps],
                              "baseline_ramps": [[asdict(level) for level in levels] for levels in baseline_ramps],
                              "websockify_memory_per_connection_mb": [value / 1e6 for value in peer_memory]})
