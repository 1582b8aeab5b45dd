"""Throughput, server→browser, flat-out replay, one session; and the CPU it costs.

For each encoding's capture, one flat-out replay server is proxied by four processes on
the same core: deskgate recording (as in production, its journal writer threads on the
load's core, ``storage.writer_cpus``), deskgate recording with its writers on the proxy's
core too ("one core"), deskgate with the journal swapped for a no-op
(:mod:`bench.gateway_process`), and websockify — and, with ``--baseline REV``,
deskgate recording at that commit (:mod:`bench.baseline`). Runs alternate between them,
each starting with a different one. A run is one fresh session: ``WARMUP`` seconds, then
the bytes the viewer receives in ``WINDOW`` seconds, and the proxy's CPU time over the
same window. After each recorded run the gateway's journals are sealed and deleted.

The CPU per GB figures are of the whole session: the proxy's CPU time from before the
viewer connects until its journal is sealed (recording on) or until the connection is
gone (the others), over every byte the viewer received — so the seal, the last flush and
the session's set-up and tear-down are in the recording's cost.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import aiohttp

from bench.baseline import Baseline
from bench.capture_file import Capture
from bench.harness import Harness, Route, rotated, viewer_session
from bench.replay import Pace
from bench.report import Figure, Measured, Summary

WARMUP = 0.5
WINDOW = 2.0
CLOSE_SETTLE = 0.2  # after a session without a journal: the proxy closes its side
TARGET = "bench-desk"
ROUTES = ("recording on", "recording off", "websockify", "recording on, one core")
BASELINE = "baseline"


@dataclass(frozen=True, slots=True)
class FlatRun:
    received_bytes: int
    seconds: float
    cpu_seconds: float  # of the proxy, over the same window
    session_bytes: int  # every byte received in the session
    session_cpu_seconds: float  # of the proxy, from before the session to its seal (or its close)

    @property
    def session_cpu_seconds_per_gb(self) -> float:
        return self.session_cpu_seconds / (self.session_bytes / 1e9)

    @property
    def megabytes_per_second(self) -> float:
        return self.received_bytes / self.seconds / 1e6

    @property
    def cpu_seconds_per_gb(self) -> float:
        return self.cpu_seconds / (self.received_bytes / 1e9)

    @property
    def cpu_share(self) -> float:
        """How much of its core the proxy used (1.0: the proxy was the bottleneck)."""
        return self.cpu_seconds / self.seconds


async def flat_run(route: Route, http: aiohttp.ClientSession, capture: Capture,
                   sealed: Callable[[], Awaitable[None]] | None = None) -> FlatRun:
    """One flat-out session; ``sealed`` waits until its journal is sealed (and removes it)."""
    cpu: list[float] = []
    session_start = route.cpu_seconds()
    async with viewer_session(route, http, capture) as viewer:
        received, seconds, total = await viewer.count_flat(WARMUP, WINDOW, lambda: cpu.append(route.cpu_seconds()))
    if sealed is not None:
        await sealed()
    else:
        await asyncio.sleep(CLOSE_SETTLE)
    return FlatRun(received, seconds, cpu[1] - cpu[0], total, route.cpu_seconds() - session_start)


async def measure_encoding(workdir: Path, capture: Capture, runs: int,
                           baseline: Baseline | None = None) -> dict[str, list[FlatRun]]:
    """``runs`` flat-out runs through each of :data:`ROUTES` (and the baseline's gateway), alternating."""
    async with Harness(workdir) as harness:
        replay = await harness.replay(capture, Pace.FLAT)
        recording_on = await harness.gateway("recording-on", {TARGET: replay.port})
        one_core = await harness.gateway("recording-one-core", {TARGET: replay.port}, writers_apart=False)
        recording_off = await harness.gateway("recording-off", {TARGET: replay.port}, recording=False)
        websockify = await harness.websockify(replay.port)
        ways: dict[str, tuple[Route, aiohttp.ClientSession]] = {
            "recording on": (recording_on.route(TARGET), recording_on.http),
            "recording off": (recording_off.route(TARGET), recording_off.http),
            "websockify": (websockify, await harness.http()),
            "recording on, one core": (one_core.route(TARGET), one_core.http),
        }
        recording = {"recording on": recording_on, "recording on, one core": one_core}
        if baseline is not None:
            before = await harness.gateway("baseline", {TARGET: replay.port}, tree=baseline.tree)
            ways[BASELINE] = (before.route(TARGET), before.http)
            recording[BASELINE] = before
        results: dict[str, list[FlatRun]] = {name: [] for name in ways}
        for run in range(runs):
            for name in rotated(list(ways), run):
                route, http = ways[name]
                deployment = recording.get(name)
                sealed = functools.partial(deployment.discard_recordings, 1) if deployment is not None else None
                results[name].append(await flat_run(route, http, capture, sealed))
        return results


async def measure_throughput(workdir: Path, captures: dict[str, Capture], runs: int,
                             baseline: Baseline | None = None) -> Measured:
    figures: list[Figure] = []
    details: dict[str, object] = {}
    for encoding, capture in captures.items():
        results = await measure_encoding(workdir / f"throughput-{encoding}", capture, runs, baseline)
        on, off, peer, one_core = (results[name] for name in ROUTES)
        figures += [
            Figure(f"throughput_{encoding}", f"throughput, flat out, one core, {encoding}", "MB/s", _rate(on),
                   _rate(peer), "websockify", target_value=300.0 if encoding == "tight" else None,
                   target_text="≥ 300 MB/s" if encoding == "tight" else ""),
            Figure(f"recording_cost_{encoding}", f"recording on vs off, {encoding}", "MB/s", _rate(on), _rate(off),
                   "recording off", target_ratio=0.9, target_text="≥ 0.9×"),
            Figure(f"cpu_per_gb_{encoding}", f"CPU per GB proxied, whole session with seal, {encoding}", "CPU s/GB",
                   _session_cpu(on), _session_cpu(peer), "websockify", higher_is_better=False, digits=2,
                   target_ratio=3.0 if encoding == "tight" else None,
                   target_text="≤ 3×" if encoding == "tight" else ""),
            Figure(f"cpu_per_gb_off_{encoding}", f"CPU per GB, recording off, {encoding}", "CPU s/GB",
                   _session_cpu(off), _session_cpu(peer), "websockify", higher_is_better=False, digits=2),
            Figure(f"recording_cost_one_core_{encoding}", f"recording on vs off, writers on the proxy's core, {encoding}",
                   "MB/s", _rate(one_core), _rate(off), "recording off"),
            Figure(f"cpu_per_gb_one_core_{encoding}", f"CPU per GB, whole session, writers on the proxy's core, {encoding}",
                   "CPU s/GB", _session_cpu(one_core), _session_cpu(peer), "websockify", higher_is_better=False, digits=2),
        ]
        if baseline is not None:
            before = results[BASELINE]
            figures += [
                Figure(f"throughput_vs_baseline_{encoding}", f"throughput vs {baseline.label}, {encoding}", "MB/s",
                       _rate(on), _rate(before), baseline.label, target_ratio=0.95, target_text="≥ 0.95× (not worse)"),
                Figure(f"cpu_per_gb_vs_baseline_{encoding}", f"CPU per GB vs {baseline.label}, {encoding}",
                       "CPU s/GB", _cpu(on), _cpu(before), baseline.label, higher_is_better=False, digits=2),
            ]
        details[encoding] = {name: [asdict(run) | {"cpu_share": round(run.cpu_share, 3),
                                                   "window_cpu_seconds_per_gb": round(run.cpu_seconds_per_gb, 3)}
                                    for run in flat_runs]
                             for name, flat_runs in results.items()}
    return Measured(figures, details)


def _rate(flat_runs: list[FlatRun]) -> Summary:
    return Summary.of([run.megabytes_per_second for run in flat_runs])


def _cpu(flat_runs: list[FlatRun]) -> Summary:
    return Summary.of([run.cpu_seconds_per_gb for run in flat_runs])


def _session_cpu(flat_runs: list[FlatRun]) -> Summary:
    return Summary.of([run.session_cpu_seconds_per_gb for run in flat_runs])
