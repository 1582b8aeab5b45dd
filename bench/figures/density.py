"""Density: sessions per gateway core, per workload — by latency and by CPU per session against websockify.

**Sessions that hold p99 < 20 ms.** A run starts a fresh gateway (recording) and adds sessions
level by level. Each session replays the workload's Tight capture at recorded pace from its own
point in the loop's time (:meth:`~bench.capture_file.Capture.index_at`, golden-ratio steps) and
presses a key every ``PROBE_INTERVAL``. One more session, straight to the replay server over
TCP, presses a key every ``DIRECT_PROBE_INTERVAL``: it measures the benchmark process's own
delay under the same load, which is subtracted, so that "added" latency is the gateway's. The
search is coarse, then fine:

- coarse: levels grow by ``COARSE_GROWTH`` from ``START``, one ``WINDOW`` each (more where fewer would not give
  ``MIN_SAMPLES`` round trips), until one fails;
- fine: the last coarse level that held is measured again with ``FINE_WINDOWS`` windows, then
  levels go up in steps of ``FINE_STEP`` of it (at least 2 sessions) until one fails — or, if it
  does not hold this time, down until one holds. Only fine levels count.

A level holds when the p99 added latency over all its windows (pooled; at least
``MIN_SAMPLES`` round trips) is under ``MAX_ADDED_P99_MS``, no key press went unanswered, and
the replay kept the workload's pace: the p99 of how late its messages went out is under
``MAX_ADDED_P99_MS`` too. Without that last rule a saturated load process offered less than the
workload and delayed the direct probe as much as the gateway's sessions, so that the subtracted
p99 stayed small while nobody kept up (a run gave 102 office sessions where CPU alone allows 53).
The run's figure is the largest fine level that held.

**CPU per session.** ``CPU_SESSIONS`` sessions of the same workload through the gateway, then
through websockify (which forks a process per connection; its CPU and PSS are summed over
them): each proxy's CPU time over ``CPU_WINDOW`` seconds, per session. The ratio holds across
machines where absolute session counts do not; ``1 / CPU per session`` is the count a core
could carry if CPU were the only limit.

With ``--baseline REV``, each run also ramps the gateway of that commit (office workload).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import aiohttp

from bench.baseline import Baseline
from bench.capture_file import Capture
from bench.client import FollowResult
from bench.harness import DirectRoute, Harness, Route, viewer_session
from bench.replay import Pace, ReplayServer
from bench.report import Figure, Measured, Summary, percentile
from gateway.rfb.errors import RFBError

MAX_ADDED_P99_MS = 20.0
PROBE_INTERVAL = 0.5
DIRECT_PROBE_INTERVAL = 0.01
START = 10
COARSE_GROWTH = 1.4
FINE_STEP = 0.05
FINE_WINDOWS = 3
SETTLE = 1.0
WINDOW = 4.0
MIN_SAMPLES = 100
MAX_SESSIONS = 600
CPU_SESSIONS = 25
CPU_WINDOW = 8.0
RUNS = 2  # at most, per workload: a run takes about 3 minutes
TARGET = "bench-desk"
TARGET_SESSIONS = {"callcenter": 150}
_GOLDEN = 0.6180339887


@dataclass(frozen=True, slots=True)
class Level:
    sessions: int
    windows: int
    samples: int
    added_p99_ms: float  # pooled over the windows
    window_added_p99_ms: tuple[float, ...]
    gateway_p99_ms: float
    direct_p99_ms: float
    lost_key_presses: int
    gateway_cpu_share: float
    memory_per_session: float  # bytes of PSS over the idle gateway's
    replay_late_p99_ms: float  # how late the replay's messages went out, pooled over the windows
    unopened: str = ""  # why a session of this level could not be opened, if one could not

    @property
    def holds(self) -> bool:
        return (self.added_p99_ms < MAX_ADDED_P99_MS and self.replay_late_p99_ms < MAX_ADDED_P99_MS
                and self.lost_key_presses == 0 and self.samples >= MIN_SAMPLES and not self.unopened)


class SessionPool:
    """Viewers following a recorded-pace replay, each from its own point of the loop, until closed.

    The pool grows and shrinks to each level's count (a fine level may lie below a coarse one that
    failed); the last sessions opened are the first closed. ``stack`` closes what is left.
    """

    def __init__(self, route: Route, http: aiohttp.ClientSession, capture: Capture, probe_interval: float,
                 stack: contextlib.AsyncExitStack) -> None:
        self._route, self._http, self._capture = route, http, capture
        self._probe_interval = probe_interval
        self._sessions: list[tuple[contextlib.AsyncExitStack, FollowResult]] = []
        stack.push_async_callback(self.resize, 0)

    @property
    def results(self) -> list[FollowResult]:
        return [result for _, result in self._sessions]

    async def resize(self, count: int) -> None:
        while len(self._sessions) > count:
            session, _ = self._sessions.pop()
            await session.aclose()
        while len(self._sessions) < count:
            start_index = self._capture.index_at(len(self._sessions) * _GOLDEN)
            async with contextlib.AsyncExitStack() as session:
                viewer = await session.enter_async_context(
                    viewer_session(self._route, self._http, self._capture, start_index))
                result = FollowResult()
                follower = asyncio.create_task(viewer.follow(result, self._probe_interval))
                session.callback(follower.cancel)  # before the viewer closes
                self._sessions.append((session.pop_all(), result))

    def take_round_trips(self) -> list[float]:
        """Round trips (ms) since the last call, of every session."""
        taken = [seconds * 1000 for result in self.results for seconds in result.round_trips]
        for result in self.results:
            result.round_trips.clear()
        return taken

    def lost_key_presses(self) -> int:
        return sum(result.lost_echoes() for result in self.results)


class Ramp:
    """One gateway with its sessions, measured level by level."""

    def __init__(self, pool: SessionPool, direct: SessionPool, route: Route, replay: ReplayServer,
                 idle_memory: int) -> None:
        self._pool, self._direct, self._route, self._idle_memory = pool, direct, route, idle_memory
        self._replay = replay

    async def level(self, count: int, windows: int) -> Level:
        # Enough windows for MIN_SAMPLES round trips: 10 sessions give 80 in one window, and a level
        # without enough samples cannot hold (the first coarse level never held, and every run gave 0).
        windows = max(windows, math.ceil(MIN_SAMPLES / (count * WINDOW / PROBE_INTERVAL)))
        try:
            await self._pool.resize(count)
        except (RFBError, OSError, TimeoutError, aiohttp.ClientError) as exc:
            # A session the loaded gateway (or the benchmark's own replay server, on its saturated core)
            # could not open in time: this level does not hold; the ramp goes on as for any failed level.
            inf = float("inf")
            return Level(count, windows, 0, inf, (inf,), inf, inf, 0, 0.0, 0.0, inf, f"{type(exc).__name__}: {exc}")
        await asyncio.sleep(SETTLE)
        self._pool.take_round_trips()
        self._direct.take_round_trips()
        self._replay.take_lateness()
        cpu_before = self._route.cpu_seconds()
        gateway: list[float] = []
        direct: list[float] = []
        window_p99: list[float] = []
        for _ in range(windows):
            await asyncio.sleep(WINDOW)
            ours, theirs = self._pool.take_round_trips(), self._direct.take_round_trips()
            window_p99.append(percentile(ours or [float("inf")], 99) - percentile(theirs or [float("inf")], 99))
            gateway += ours
            direct += theirs
        gateway_p99 = percentile(gateway or [float("inf")], 99)
        direct_p99 = percentile(direct or [float("inf")], 99)
        late_p99 = percentile([seconds * 1000 for seconds in self._replay.take_lateness()] or [float("inf")], 99)
        return Level(count, windows, len(gateway), gateway_p99 - direct_p99, tuple(window_p99), gateway_p99,
                     direct_p99, self._pool.lost_key_presses(),
                     (self._route.cpu_seconds() - cpu_before) / (WINDOW * windows),
                     (self._route.memory_bytes() - self._idle_memory) / count, late_p99)


async def ramp(workdir: Path, capture: Capture, tree: Path | None = None) -> list[Level]:
    """One run (of this tree's gateway, or ``tree``'s): the coarse levels, then the fine ones."""
    levels: list[Level] = []
    async with Harness(workdir) as harness, contextlib.AsyncExitStack() as stack:
        replay = await harness.replay(capture, Pace.RECORDED)
        if tree is None:
            gateway = await harness.gateway("gateway", {TARGET: replay.port})
        else:
            gateway = await harness.gateway("gateway", {TARGET: replay.port}, tree=tree)
        route = gateway.route(TARGET)
        direct = SessionPool(DirectRoute("direct", replay.port), await harness.http(), capture,
                             DIRECT_PROBE_INTERVAL, stack)
        await direct.resize(1)
        pool = SessionPool(route, gateway.http, capture, PROBE_INTERVAL, stack)
        measure = Ramp(pool, direct, route, replay, gateway.process.memory_bytes())
        held = 0
        count = START
        while count <= MAX_SESSIONS:  # coarse
            level = await measure.level(count, 1)
            gateway.process.check_alive()
            levels.append(level)
            if not level.holds:
                break
            held = count
            count = max(count + 1, round(count * COARSE_GROWTH))
        step = max(2, round(held * FINE_STEP))
        count, direction = held, 0
        while 0 < count <= MAX_SESSIONS:  # fine: the last coarse level that held, again, then up (or down)
            level = await measure.level(count, FINE_WINDOWS)
            gateway.process.check_alive()
            levels.append(level)
            if direction == 0:
                direction = 1 if level.holds else -1
            elif level.holds == (direction < 0):  # going up, one failed; going down, one held
                break
            count += direction * step
    return levels


async def cpu_per_session(workdir: Path, capture: Capture, route_name: str) -> tuple[float, float]:
    """CPU share and PSS growth per session with :data:`CPU_SESSIONS` sessions through deskgate or websockify."""
    async with Harness(workdir) as harness, contextlib.AsyncExitStack() as stack:
        replay = await harness.replay(capture, Pace.RECORDED)
        route: Route
        if route_name == "websockify":
            route = await harness.websockify(replay.port)
            http = await harness.http()
        else:
            gateway = await harness.gateway("gateway", {TARGET: replay.port})
            route, http = gateway.route(TARGET), gateway.http
        idle_memory = route.memory_bytes()
        pool = SessionPool(route, http, capture, PROBE_INTERVAL, stack)
        await pool.resize(CPU_SESSIONS)
        await asyncio.sleep(SETTLE)
        before = route.cpu_seconds()
        await asyncio.sleep(CPU_WINDOW)
        share = (route.cpu_seconds() - before) / CPU_WINDOW / CPU_SESSIONS
        return share, (route.memory_bytes() - idle_memory) / CPU_SESSIONS


def held_level(levels: list[Level]) -> Level | None:
    """The largest fine level (several windows) that held."""
    held = [level for level in levels if level.holds and level.windows >= FINE_WINDOWS]
    return max(held, key=lambda level: level.sessions) if held else None


async def measure_workload(workdir: Path, workload: str, capture: Capture, runs: int,
                           baseline: Baseline | None) -> Measured:
    ramps: list[list[Level]] = []
    baseline_ramps: list[list[Level]] = []
    ours_cpu: list[float] = []
    theirs_cpu: list[float] = []
    ours_memory: list[float] = []
    theirs_memory: list[float] = []
    for run in range(min(runs, RUNS)):
        if baseline is not None and run % 2:  # alternate which goes first
            baseline_ramps.append(await ramp(workdir / f"baseline-{run}", capture, baseline.tree))
        ramps.append(await ramp(workdir / f"density-{run}", capture))
        if baseline is not None and not run % 2:
            baseline_ramps.append(await ramp(workdir / f"baseline-{run}", capture, baseline.tree))
        for name, cpu, memory in (("deskgate", ours_cpu, ours_memory), ("websockify", theirs_cpu, theirs_memory)):
            share, per_session = await cpu_per_session(workdir / f"cpu-{name}-{run}", capture, name)
            cpu.append(share * 100)
            memory.append(per_session / 1e6)
    held = [held_level(levels) for levels in ramps]
    density = Summary.of([level.sessions if level else 0 for level in held])
    failed_cpu = [levels[-1].gateway_cpu_share * 100 for levels in ramps if not levels[-1].holds]
    busy = f"; the gateway used {Summary.of(failed_cpu).text(0)} % of its core at the first level that failed" \
        if failed_cpu else ""
    target = TARGET_SESSIONS.get(workload)
    ours = Summary.of(ours_cpu)
    figures = [
        Figure(f"density_{workload}", f"{workload} sessions on one core, p99 < {MAX_ADDED_P99_MS:.0f} ms, tight",
               "sessions", density, None, target_value=target, target_text=f"≥ {target}" if target else "",
               digits=0, note=f"added p99 over {FINE_WINDOWS} windows of {WINDOW:.0f} s per level{busy}"),
        Figure(f"cpu_per_session_{workload}", f"CPU per session, {workload}, tight", "% of a core", ours,
               Summary.of(theirs_cpu), "websockify, per connection", higher_is_better=False, digits=2,
               note=f"{CPU_SESSIONS} sessions; CPU alone would allow {100 / ours.median:.0f} sessions a core"),
        Figure(f"memory_per_session_{workload}", f"memory per session (PSS), {workload}", "MB",
               Summary.of(ours_memory), Summary.of(theirs_memory), "websockify, per connection",
               higher_is_better=False, digits=2),
    ]
    if baseline is not None:
        held_before = [held_level(levels) for levels in baseline_ramps]
        figures.append(Figure(
            f"density_{workload}_vs_baseline", f"{workload} sessions on one core vs {baseline.label}", "sessions",
            density, Summary.of([level.sessions if level else 0 for level in held_before]), baseline.label,
            target_ratio=0.95, target_text="≥ 0.95× (not worse)", digits=0))
    return Measured(figures, {"ramps": [[asdict(level) for level in levels] for levels in ramps],
                              "baseline_ramps": [[asdict(level) for level in levels] for levels in baseline_ramps],
                              "cpu_per_session_percent": {"deskgate": ours_cpu, "websockify": theirs_cpu},
                              "memory_per_session_mb": {"deskgate": ours_memory, "websockify": theirs_memory}})


async def measure_density(workdir: Path, workloads: dict[str, Capture], runs: int,
                          baseline: Baseline | None = None) -> Measured:
    figures: list[Figure] = []
    details: dict[str, object] = {}
    for workload, capture in workloads.items():
        measured = await measure_workload(workdir / workload, workload, capture, runs,
                                          baseline if workload == "office" else None)
        figures += measured.figures
        details[workload] = measured.details
    return Measured(figures, details)
