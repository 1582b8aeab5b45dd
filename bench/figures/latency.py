"""Added round-trip latency of a key press: deskgate (recording) and websockify, each minus direct TCP.

One replay server plays the office capture at recorded pace. A run opens one session through
each route in turn (direct TCP, deskgate, websockify; the order rotates), each starting at the
same point of the office work, presses a key every ``PROBE_INTERVAL`` and times the replay
server's echo for ``WINDOW`` seconds: at least ``MIN_SAMPLES`` round trips per route and run,
so that the p99 is the 20th-worst sample or beyond, not the 3rd. A route's added latency in a
run is its percentile minus the direct connection's percentile in the same run.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import aiohttp

from bench.capture_file import Capture
from bench.client import FollowResult
from bench.harness import DirectRoute, Harness, Route, rotated, viewer_session
from bench.replay import Pace
from bench.report import Figure, Measured, Summary, percentile

PROBE_INTERVAL = 0.0035
SETTLE = 0.5
WINDOW = 10.0
MIN_SAMPLES = 2000
TARGET = "bench-desk"
ROUTES = ("direct", "deskgate", "websockify")


async def round_trips(route: Route, http: aiohttp.ClientSession, capture: Capture, start_index: int) -> list[float]:
    """Key→echo round trips (ms) over one window of a fresh session through ``route``."""
    result = FollowResult()
    async with viewer_session(route, http, capture, start_index) as viewer:
        follower = asyncio.create_task(viewer.follow(result, PROBE_INTERVAL))
        await asyncio.sleep(SETTLE)
        result.round_trips.clear()
        await asyncio.sleep(WINDOW)
        follower.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await follower
    if not result.round_trips or result.lost_echoes():
        raise RuntimeError(f"{route.name}: {result.lost_echoes()} key presses were never echoed")
    if len(result.round_trips) < MIN_SAMPLES:
        raise RuntimeError(f"{route.name}: only {len(result.round_trips)} round trips in {WINDOW:.0f} s, "
                           f"fewer than the {MIN_SAMPLES} a p99 needs here; is the machine overloaded?")
    return [seconds * 1000 for seconds in result.round_trips]


async def measure_latency(workdir: Path, capture: Capture, runs: int) -> Measured:
    async with Harness(workdir) as harness:
        replay = await harness.replay(capture, Pace.RECORDED)
        gateway = await harness.gateway("gateway", {TARGET: replay.port})
        websockify = await harness.websockify(replay.port)
        plain = await harness.http()
        ways: dict[str, tuple[Route, aiohttp.ClientSession]] = {
            "direct": (DirectRoute("direct", replay.port), plain),
            "deskgate": (gateway.route(TARGET), gateway.http),
            "websockify": (websockify, plain),
        }
        samples: dict[str, list[list[float]]] = {name: [] for name in ROUTES}
        for run in range(runs):
            start_index = capture.index_at(run / runs)  # each run plays another part of the office work
            for name in rotated(ROUTES, run):
                route, http = ways[name]
                samples[name].append(await round_trips(route, http, capture, start_index))
            await gateway.discard_recordings(1)
    figures = []
    details: dict[str, object] = {"probe_interval_s": PROBE_INTERVAL, "window_s": WINDOW}
    for q in (50, 99):
        value = {name: [percentile(run, q) for run in per_run] for name, per_run in samples.items()}
        added = {name: Summary.of([v - d for v, d in zip(value[name], value["direct"])])
                 for name in ("deskgate", "websockify")}
        direct = Summary.of(value["direct"])
        figures.append(Figure(
            f"added_latency_p{q}", f"added key→echo latency p{q}", "ms", added["deskgate"], added["websockify"],
            "websockify", higher_is_better=False, digits=2,
            target_ratio=1.0 if q == 99 else None, target_text="≤ 1.0×" if q == 99 else "",
            note=f"direct TCP round trip p{q}: {direct.text(2)} ms; ≥ {MIN_SAMPLES} samples per route and run",
        ))
        details[f"round_trip_p{q}_ms"] = value
    details["samples_per_run"] = {name: [len(run) for run in per_run] for name, per_run in samples.items()}
    return Measured(figures, details)
