"""Recording size and rendering: journal bytes per hour of office work, and journal → MP4 on one core.

Every encoding's capture is played once through, at recorded pace, to ``runs`` sessions
through deskgate (each to a target of its own, so that its journal can be told apart) and
``runs`` sessions through a websockify ``--record``-ing to its own files, all at once. Per
session, the journal (with its seal) is set against the RFB bytes on the wire — what the
viewer received and sent after the handshake — and against websockify's record; sizes per
hour of office work use the capture's own duration. Then each journal is rendered by
:func:`recorder.render.render_journal` in a process of its own on the proxy's core.
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
from bench.processes import ProcessFailed
from bench.replay import Pace
from bench.report import Figure, Measured, Summary
from recorder.journal import JournalReader
from recorder.keyring import RecordingKeyring, install
from recorder.seal import seal_path

HOUR = 3600.0
#: Where the bench gateway's recording keys are, in its working directory (``storage.recording_keys``' default).
KEYS = Path("var") / "recording-keys"


def journal_keys(journal: Path) -> Path:
    """The recording keys of a journal under ``WORKDIR/recordings/YYYY/MM/DD/``."""
    return journal.parents[4] / KEYS


_RENDER = """\
import json, sys
from pathlib import Path
from recorder.keyring import RecordingKeyring, install
from recorder.render import render_journal
install(RecordingKeyring.load(Path(sys.argv[3]), create=False))  # the bench gateway's recording keys
result = render_journal(Path(sys.argv[1]), Path(sys.argv[2]))
print(json.dumps({"duration": result.duration, "wall_seconds": result.wall_seconds, "error": result.error}))
"""


@dataclass(frozen=True, slots=True)
class Recorded:
    """One session, per hour of office work: its journal (with the seal), the wire, websockify's record."""

    journal: Path
    journal_mb_per_hour: float
    wire_mb_per_hour: float
    websockify_mb_per_hour: float


@dataclass(frozen=True, slots=True)
class Render:
    realtime_factor: float
    mp4_mb_per_hour: float


async def play_through(route: Route, http: aiohttp.ClientSession, capture: Capture) -> int:
    """One session for one pass of the capture; the RFB bytes it put on the wire after the handshake."""
    result = FollowResult()
    async with viewer_session(route, http, capture) as viewer:
        await viewer.follow(result)
        return result.received_bytes + viewer.sent_bytes


async def record_office(workdir: Path, captures: dict[str, Capture], runs: int) -> dict[str, list[Recorded]]:
    """``runs`` sessions per encoding through deskgate and as many through websockify, all at once."""
    async with Harness(workdir) as harness:
        replays = {encoding: await harness.replay(capture, Pace.RECORDED, passes=1)
                   for encoding, capture in captures.items()}
        gateway = await harness.gateway("gateway", {f"bench-{encoding}-{run}": replay.port
                                                    for encoding, replay in replays.items() for run in range(runs)})
        plain = await harness.http()
        ours, theirs = [], []
        for encoding, replay in replays.items():
            websockify = await harness.websockify(replay.port, f"websockify-{encoding}",
                                                  record=workdir / f"record-{encoding}")
            for run in range(runs):
                ours.append(play_through(gateway.route(f"bench-{encoding}-{run}"), gateway.http, captures[encoding]))
                theirs.append(play_through(websockify, plain, captures[encoding]))
        wire = iter((await asyncio.gather(*ours, *theirs))[: len(ours)])
        install(RecordingKeyring.load(workdir / KEYS, create=False))  # journals are encrypted at rest
        journals = {JournalReader(path).header["target"]: path
                    for path in await gateway.sealed_journals(len(ours))}
    recorded: dict[str, list[Recorded]] = {}
    for encoding, capture in captures.items():
        per_hour = HOUR / capture.loop_duration / 1e6
        # websockify numbers its records by connection; the sessions carry the same bytes in any order.
        records = sorted(workdir.glob(f"record-{encoding}.*"), key=lambda path: int(path.suffix[1:]))
        recorded[encoding] = []
        for run, record in zip(range(runs), records, strict=True):
            journal = journals[f"bench-{encoding}-{run}"]
            journal_bytes = journal.stat().st_size + seal_path(journal).stat().st_size
            recorded[encoding].append(Recorded(journal, journal_bytes * per_hour, next(wire) * per_hour,
                                               record.stat().st_size * per_hour))
    return recorded


async def render(journal: Path) -> Render:
    """Render ``journal`` to MP4 in a fresh process on the proxy's core."""
    output = journal.with_suffix(".mp4")
    taskset = ["taskset", "-c", ",".join(map(str, PROXY_CPUS))] if PROXY_CPUS else []
    process = await asyncio.create_subprocess_exec(*taskset, sys.executable, "-c", _RENDER, str(journal),
                                                   str(output), str(journal_keys(journal)), stdout=asyncio.subprocess.PIPE)
    stdout, _ = await process.communicate()
    if process.returncode != 0:
        raise ProcessFailed(f"rendering {journal} failed with status {process.returncode}")
    result = json.loads(stdout)
    if result["error"]:
        raise ProcessFailed(f"rendering {journal} stopped early: {result['error']}")
    return Render(result["duration"] / result["wall_seconds"], output.stat().st_size * HOUR / result["duration"] / 1e6)


async def measure_recording(workdir: Path, captures: dict[str, Capture], runs: int) -> Measured:
    figures: list[Figure] = []
    details: dict[str, object] = {}
    for encoding, sessions in (await record_office(workdir, captures, runs)).items():
        renders = [await render(session.journal) for session in sessions]
        journal = Summary.of([session.journal_mb_per_hour for session in sessions])
        mp4 = Summary.of([r.mp4_mb_per_hour for r in renders])
        figures += [
            Figure(f"journal_vs_wire_{encoding}", f"journal vs wire bytes, {encoding}", "MB/h", journal,
                   Summary.of([session.wire_mb_per_hour for session in sessions]), "RFB bytes on the wire",
                   higher_is_better=False, target_ratio=1.05, target_text="≤ 1.05×"),
            Figure(f"journal_vs_websockify_{encoding}", f"journal vs websockify --record, {encoding}", "MB/h",
                   journal, Summary.of([session.websockify_mb_per_hour for session in sessions]),
                   "websockify --record", higher_is_better=False),
            Figure(f"render_{encoding}", f"render realtime factor, one core, {encoding}", "× realtime",
                   Summary.of([r.realtime_factor for r in renders]), None, target_value=20.0, target_text="≥ 20×",
                   note=f"MP4: {mp4.text(1)} MB/h"),
        ]
        details[encoding] = {"sessions": [{key: value for key, value in asdict(session).items() if key != "journal"}
                                          for session in sessions],
                             "renders": [asdict(r) for r in renders]}
    return Measured(figures, details)
