"""Recording size and rendering, per workload: journal and MP4 bytes per operator-hour, render speed in CPU time.

Every workload's captures (office and call center, each in Tight, ZRLE and Hextile) are played
once through, at recorded pace, to ``runs`` sessions each through deskgate (each to a target
of its own, so that its journal can be told apart), all at once. Per session, the journal
with its seal is set against the RFB bytes on the wire — what the viewer received and sent
after the handshake — and sizes per hour use the capture's own duration (an operator-hour
of that workload). Then ``RENDERS`` of each encoding's journals are rendered by
:mod:`bench.render_check` (``render_journal`` with the export defaults) in a process of
their own pinned to the proxy's core: realtime factor = session seconds / the render's
CPU seconds, the MP4's size per hour, and the PSNR of every 10th frame.

websockify's ``--record`` is not a peer here: it is a debug dump of WebSocket frames, not a
recording anyone replays, so it is no longer measured.
"""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import aiohttp

from bench.capture_file import Capture
from bench.client import FollowResult
from bench.harness import PROXY_CPUS, Harness, Route, viewer_session
from bench.processes import BENCH_ROOT, ProcessFailed
from bench.replay import Pace
from bench.report import Figure, Measured, Summary
from recorder.journal import JournalReader
from recorder.keyring import RecordingKeyring, install
from recorder.seal import seal_path

HOUR = 3600.0
RENDERS = 3  # journals rendered per workload and encoding (at most ``runs``)
MIN_PSNR_DB = 38.0
MAX_MP4_MB_PER_HOUR = 40.0  # on the call-center workload
MIN_RENDER_FACTOR = 20.0  # × realtime per core in CPU time, on the Tight office capture
#: Where the bench gateway's recording keys are, in its working directory (``storage.recording_keys``' default).
KEYS = Path("var") / "recording-keys"


def journal_keys(journal: Path) -> Path:
    """The recording keys of a journal under ``WORKDIR/recordings/YYYY/MM/DD/``."""
    return journal.parents[4] / KEYS


@dataclass(frozen=True, slots=True)
class Recorded:
    """One session, per operator-hour of its workload: its journal (with the seal) and the wire."""

    journal: Path
    journal_mb_per_hour: float
    wire_mb_per_hour: float


@dataclass(frozen=True, slots=True)
class Render:
    realtime_factor: float  # session seconds per CPU second
    wall_realtime_factor: float
    mp4_mb_per_hour: float
    frames: int
    min_psnr_db: float


async def play_through(route: Route, http: aiohttp.ClientSession, capture: Capture) -> int:
    """One session for one pass of the capture; the RFB bytes it put on the wire after the handshake."""
    result = FollowResult()
    async with viewer_session(route, http, capture) as viewer:
        await viewer.follow(result)
        return result.received_bytes + viewer.sent_bytes


async def record(workdir: Path, workloads: dict[str, dict[str, Capture]],
                 runs: int) -> dict[tuple[str, str], list[Recorded]]:
    """``runs`` sessions per workload and encoding through one deskgate, all at once."""
    async with Harness(workdir) as harness:
        replays = {(workload, encoding): await harness.replay(capture, Pace.RECORDED, passes=1)
                   for workload, captures in workloads.items() for encoding, capture in captures.items()}
        targets = {f"bench-{workload}-{encoding}-{run}": replay.port
                   for (workload, encoding), replay in replays.items() for run in range(runs)}
        gateway = await harness.gateway("gateway", targets)
        sessions = [play_through(gateway.route(f"bench-{workload}-{encoding}-{run}"), gateway.http,
                                 workloads[workload][encoding])
                    for workload, encoding in replays for run in range(runs)]
        wire = iter(await asyncio.gather(*sessions))
        install(RecordingKeyring.load(gateway.workdir / KEYS, create=False))  # journals are encrypted at rest
        journals = {JournalReader(path).header["target"]: path
                    for path in await gateway.sealed_journals(len(sessions))}
    recorded: dict[tuple[str, str], list[Recorded]] = {}
    for workload, encoding in replays:
        per_hour = HOUR / workloads[workload][encoding].loop_duration / 1e6
        recorded[workload, encoding] = []
        for run in range(runs):
            journal = journals[f"bench-{workload}-{encoding}-{run}"]
            journal_bytes = journal.stat().st_size + seal_path(journal).stat().st_size
            recorded[workload, encoding].append(Recorded(journal, journal_bytes * per_hour, next(wire) * per_hour))
    return recorded


async def render(journal: Path) -> Render:
    """Render ``journal`` to MP4 in a fresh process on the proxy's core (:mod:`bench.render_check`)."""
    output = journal.with_suffix(".mp4")
    taskset = ["taskset", "-c", ",".join(map(str, PROXY_CPUS))] if PROXY_CPUS else []
    process = await asyncio.create_subprocess_exec(*taskset, sys.executable, "-m", "bench.render_check",
                                                   str(journal), str(output), "--keys", str(journal_keys(journal)),
                                                   stdout=asyncio.subprocess.PIPE,
                                                   cwd=BENCH_ROOT)
    stdout, _ = await process.communicate()
    if process.returncode != 0:
        raise ProcessFailed(f"rendering {journal} failed with status {process.returncode}")
    result = json.loads(stdout)
    if result["error"]:
        raise ProcessFailed(f"rendering {journal} stopped early: {result['error']}")
    duration = result["duration"]
    return Render(duration / result["cpu_seconds"], duration / result["wall_seconds"],
                  result["bytes"] * HOUR / duration / 1e6, result["frames"], result["min_psnr_db"])


async def measure_recording(workdir: Path, workloads: dict[str, dict[str, Capture]], runs: int) -> Measured:
    figures: list[Figure] = []
    details: dict[str, object] = {}
    for (workload, encoding), sessions in (await record(workdir, workloads, runs)).items():
        renders = [await render(session.journal) for session in sessions[:RENDERS]]
        journal = Summary.of([session.journal_mb_per_hour for session in sessions])
        mp4 = Summary.of([r.mp4_mb_per_hour for r in renders])
        worst_psnr = min(r.min_psnr_db for r in renders)
        factor = Summary.of([r.realtime_factor for r in renders])
        headline = workload == "office" and encoding == "tight"
        figures += [
            Figure(f"journal_{workload}_{encoding}", f"journal per operator-hour, {workload}, {encoding}", "MB/h",
                   journal, Summary.of([session.wire_mb_per_hour for session in sessions]), "RFB bytes on the wire",
                   higher_is_better=False, target_ratio=1.05, target_text="≤ 1.05×", note="journal + seal"),
            Figure(f"render_{workload}_{encoding}", f"render speed, one core, CPU time, {workload}, {encoding}",
                   "× realtime", factor, None,
                   target_value=MIN_RENDER_FACTOR if headline else None,
                   target_text=f"≥ {MIN_RENDER_FACTOR:.0f}× at ≥ {MIN_PSNR_DB:.0f} dB" if headline else "",
                   condition_met=worst_psnr >= MIN_PSNR_DB,
                   note=f"wall clock {Summary.of([r.wall_realtime_factor for r in renders]).text(1)}×; "
                        f"worst sampled frame {worst_psnr:.1f} dB"),
            Figure(f"mp4_{workload}_{encoding}", f"MP4 per operator-hour, {workload}, {encoding}", "MB/h", mp4,
                   journal, "journal", higher_is_better=False,
                   target_value=MAX_MP4_MB_PER_HOUR if workload == "callcenter" else None,
                   target_text=f"≤ {MAX_MP4_MB_PER_HOUR:.0f} MB/h" if workload == "callcenter" else ""),
        ]
        details[f"{workload}_{encoding}"] = {
            "sessions": [{key: value for key, value in asdict(session).items() if key != "journal"}
                         for session in sessions],
            "renders": [asdict(r) for r in renders]}
    return Measured(figures, details)
