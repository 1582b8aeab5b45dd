"""CPU per GB of the proxy's hot path, in process: the target's stream framed and forwarded to the browser.

``python -m bench.proxy_path [--baseline REV]`` feeds each office capture in 64 KiB chunks
to this tree's sans-I/O :class:`~gateway.rfb.proxy.ProxyConnection` and takes the best
CPU time of several passes; with ``--baseline``, the same in a worktree of ``REV``, in
alternating child processes. A commit without ``ProxyConnection`` is measured the way its
pump worked: the server framer's events joined into one payload per chunk. No sockets,
no event loop: this isolates the per-message cost the bench's throughput figure carries.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import time
from pathlib import Path

PASSES = 5
CHUNK = 64 * 1024


def measure(capture_path: Path) -> float:
    """Best CPU seconds per GB over :data:`PASSES` passes, with whatever ``gateway`` is importable."""
    from bench.capture_file import read_capture
    from gateway.rfb.messages import ServerInit, SetEncodings

    capture = read_capture(capture_path)
    stream = b"".join(message.data for message in capture.messages)
    chunks = [stream[start : start + CHUNK] for start in range(0, len(stream), CHUNK)]
    init = capture.server_init
    try:
        from gateway.rfb.proxy import ProxyConnection
    except ImportError:  # before the sans-I/O proxy: the pump framed and joined in the asyncio layer
        from gateway.rfb.framing import ServerMessageFramer

        def one_pass() -> int:
            framer = ServerMessageFramer(init.pixel_format, init.width, init.height, encodings=capture.encodings)
            forwarded = 0
            for chunk in chunks:
                framer.receive_data(chunk)
                forwarded += len(b"".join([event.raw for event in framer.events_received()]))
            return forwarded
    else:
        def one_pass() -> int:
            proxy = ProxyConnection(ServerInit(init.width, init.height, init.pixel_format, b"bench"))
            proxy.receive_browser_data(SetEncodings(capture.encodings).encode())
            proxy.events_received()
            proxy.data_to_send_target()
            forwarded = 0
            for chunk in chunks:
                proxy.receive_target_data(chunk)
                proxy.events_received()
                forwarded += len(proxy.data_to_send_browser())
            return forwarded

    best = float("inf")
    for _ in range(PASSES):
        started = time.process_time()
        forwarded = one_pass()
        best = min(best, time.process_time() - started)
    if forwarded != len(stream):
        raise SystemExit(f"{capture_path.name}: forwarded {forwarded} of {len(stream)} bytes")
    return best / (len(stream) / 1e9)


def measure_in(tree: Path, capture_path: Path) -> float:
    """:func:`measure` (this file's) in a child process whose ``gateway`` and ``bench`` come from ``tree``."""
    code = ("import runpy, sys; from pathlib import Path; sys.path.insert(0, '.'); "
            f"print(runpy.run_path({__file__!r})['measure'](Path({str(capture_path)!r})))")
    done = subprocess.run([sys.executable, "-c", code], cwd=tree, capture_output=True, text=True, check=True,
                          timeout=600)
    return float(done.stdout.strip())


def main() -> None:
    from bench.baseline import baseline_tree
    from bench.processes import BENCH_ROOT
    from bench.workload import CAPTURE_DIR, ENCODINGS, capture_path

    parser = argparse.ArgumentParser(prog="python -m bench.proxy_path", description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", metavar="REV", help="also measure this commit, alternating with this tree")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds (default 2)")
    args = parser.parse_args()
    results: dict[str, dict[str, list[float]]] = {}
    with baseline_tree(args.baseline) if args.baseline else contextlib.nullcontext() as baseline:
        trees = {"this tree": BENCH_ROOT} | ({baseline.label: baseline.tree} if baseline else {})
        for encoding in ENCODINGS:
            path = capture_path(encoding, CAPTURE_DIR)
            results[encoding] = {name: [] for name in trees}
            for _ in range(args.rounds):
                for name, tree in trees.items():
                    results[encoding][name].append(measure_in(tree, path))
            figures = "  ".join(f"{name}: {min(values):.2f}" for name, values in results[encoding].items())
            print(f"{encoding}: CPU s/GB, best of {args.rounds} rounds x {PASSES} passes: {figures}", flush=True)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
