"""What recording costs: CPU seconds per GB journaled, on the event loop and in total, writer alone.

    python -m bench.journal_cost [--captures DIR] [--megabytes 512] [--runs 3]

Each capture's server messages are fed, in a loop, to a real :class:`SessionRecorder`
(fsync every second, the seal at close) as the proxy feeds it: one ``server_data`` call
and one ``backpressure()`` await per message, yielding to the loop between messages. The
same feed without a recorder is measured too and subtracted, so "loop" is what recording
adds to the event loop thread (``time.thread_time`` in that thread); "total" is the
process's CPU (writer thread, CRC or AES-GCM, fsync, the seal's SHA-256) per GB.
Best of ``--runs``. Modes: ``encrypted`` (AES-256-GCM, the default) and ``plain``
(CRC-32 batches, ``storage.encrypt_recordings: false``); on a tree without
:mod:`recorder.keyring` (before format 2) only ``format-1`` runs, for the before/after.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from base.metrics import Metrics
from bench.capture_file import Capture, read_capture
from bench.workload import CAPTURE_DIR
from gateway.rfb.messages import RGBX8888
from recorder.journal import new_session_id, recording_path
from recorder.writer import SessionRecorder, session_header

KEY = bytes(32)
GB = 1e9


@dataclass(frozen=True, slots=True)
class Cost:
    loop_seconds: float
    total_seconds: float
    wall_seconds: float
    journal_bytes: int


async def _feed(messages: list[bytes], megabytes: int, recorder: SessionRecorder | None) -> int:
    """Feed the messages round and round until ``megabytes`` have gone; returns the bytes fed."""
    target, fed = megabytes << 20, 0
    while fed < target:
        for data in messages:
            if recorder is not None:
                recorder.server_data(data)
                await recorder.backpressure()
            await asyncio.sleep(0)
            fed += len(data)
            if fed >= target:
                break
    return fed


async def _run(messages: list[bytes], megabytes: int, root: Path | None, mode: str) -> Cost:
    recorder = None
    if root is not None:
        session_id = new_session_id()
        header = session_header(session_id=session_id, user="bench", source="127.0.0.1", target="bench",
                                 started_epoch=time.time(), width=1280, height=800, pixel_format=RGBX8888,
                                 desktop_name=b"bench", policy="bench", record_input="full", clipboard="off",
                                 groups=frozenset())
        options: dict[str, Any] = {}
        if mode != "format-1":
            from recorder.keyring import FIRST_KEY_ID, RecordingKeyring, new_key

            new_key(root / "keys", FIRST_KEY_ID)  # quietly: load() would warn that it made one
            options["keyring"] = RecordingKeyring.load(root / "keys", encrypt=mode == "encrypted")
        recorder = await SessionRecorder.open(recording_path(root, session_id), header, key=KEY, fsync_interval=1.0,
                                              metrics=Metrics(), **options)
    loop_start, total_start, wall_start = time.thread_time(), time.process_time(), time.perf_counter()
    await _feed(messages, megabytes, recorder)
    size = 0
    if recorder is not None:
        size = (await recorder.close("bench")).size
    return Cost(time.thread_time() - loop_start, time.process_time() - total_start,
                time.perf_counter() - wall_start, size)


def measure(capture: Capture, mode: str, megabytes: int, runs: int) -> dict[str, float]:
    """Best-of-``runs`` figures of one capture in one mode, with the bare feed subtracted."""
    messages = [message.data for message in capture.messages[1:]]
    bare = min((asyncio.run(_run(messages, megabytes, None, mode)) for _ in range(runs)),
               key=lambda cost: cost.loop_seconds)
    best: Cost | None = None
    for _ in range(runs):
        with tempfile.TemporaryDirectory(prefix="journal-cost-") as directory:
            cost = asyncio.run(_run(messages, megabytes, Path(directory), mode))
        if best is None or cost.total_seconds < best.total_seconds:
            best = cost
    assert best is not None
    gigabytes = (megabytes << 20) / GB
    return {
        "loop_cpu_s_per_gb": round((best.loop_seconds - bare.loop_seconds) / gigabytes, 3),
        "total_cpu_s_per_gb": round((best.total_seconds - bare.total_seconds) / gigabytes, 3),
        "mb_per_s": round((megabytes << 20) / 1e6 / best.wall_seconds, 1),
        "journal_overhead": round(best.journal_bytes / (megabytes << 20), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.journal_cost", description=__doc__.splitlines()[0])
    parser.add_argument("--captures", type=Path, default=CAPTURE_DIR, help=f"default {CAPTURE_DIR}")
    parser.add_argument("--megabytes", type=int, default=512, help="journaled per run (default 512)")
    parser.add_argument("--runs", type=int, default=3, help="best of (default 3)")
    args = parser.parse_args()
    try:
        import recorder.keyring  # noqa: F401

        modes = ["encrypted", "plain"]
    except ImportError:
        modes = ["format-1"]
    paths = sorted(args.captures.glob("*.rfbcap.xz"))
    if not paths:
        parser.error(f"no captures (*.rfbcap.xz) in {args.captures}; `make bench` records them")
    print(f"{'capture':<28} {'mode':<10} {'loop CPU s/GB':>14} {'total CPU s/GB':>15} {'MB/s':>8} {'size':>7}")
    for path in paths:
        capture = read_capture(path)
        for mode in modes:
            figures = measure(capture, mode, args.megabytes, args.runs)
            print(f"{path.name.removesuffix('.rfbcap.xz'):<28} {mode:<10} {figures['loop_cpu_s_per_gb']:>14.3f} "
                  f"{figures['total_cpu_s_per_gb']:>15.3f} {figures['mb_per_s']:>8.1f} "
                  f"{figures['journal_overhead']:>7.4f}", flush=True)


if __name__ == "__main__":
    main()
