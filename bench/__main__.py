"""``python -m bench`` (``make bench``): every figure, as ours / peer, into results.json and README.md.

The workloads' captures are recorded first when missing (:mod:`bench.workload`: office about
90 s, call center about 3 min). A group that fails is reported (in the table's heading, in
``results.json`` under ``failed``) and the others' figures are still written; the command
then exits with status 1.
The benchmark's own process — replay servers and viewers — keeps off the core the proxies
are pinned to (:data:`bench.harness.PROXY_CPUS`). With ``--only``, the table is printed
but neither results.json nor the README is written.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

from bench.baseline import Baseline, baseline_tree
from bench.capture_file import Capture, read_capture
from bench.figures.density import measure_density
from bench.figures.latency import measure_latency
from bench.figures.login import measure_login
from bench.figures.recording import measure_recording
from bench.figures.throughput import measure_throughput
from bench.harness import LOAD_CPUS
from bench.report import Measured, Report, format_table
from bench.workload import CAPTURE_DIR, ENCODINGS, capture_path, capture_workload
from gateway.web.app import freeze_start_up_heap

#: noVNC asks for Tight first: it is the headline encoding where one is measured.
HEADLINE = "tight"
GROUPS = ("throughput", "latency", "recording", "density", "login")


def load_captures(directory: Path, workload: str = "office") -> dict[str, Capture]:
    """A workload's captures, Tight first; recorded now if any is missing."""
    if not all(capture_path(encoding, directory, workload).exists() for encoding in ENCODINGS):
        print(f"bench: recording the {workload} workload into {directory}", flush=True)
        asyncio.run(capture_workload(workload, directory))
    order = sorted(ENCODINGS, key=lambda encoding: encoding != HEADLINE)
    return {encoding: read_capture(capture_path(encoding, directory, workload)) for encoding in order}


def group_runners(captures: dict[str, Capture], calls: dict[str, Capture], runs: int,
                  baseline: Baseline | None) -> dict[str, Callable[[Path], Awaitable[Measured]]]:
    headline = captures[HEADLINE]
    workloads = {"office": headline, "callcenter": calls[HEADLINE]}
    return {
        "throughput": lambda workdir: measure_throughput(workdir, captures, runs, baseline),
        "latency": lambda workdir: measure_latency(workdir, headline, runs),
        "recording": lambda workdir: measure_recording(workdir, {"office": captures, "callcenter": calls}, runs),
        "density": lambda workdir: measure_density(workdir, workloads, runs, baseline),
        "login": lambda workdir: measure_login(workdir, runs),
    }


async def run_groups(groups: list[str], captures: dict[str, Capture], calls: dict[str, Capture], runs: int,
                     report: Report, baseline: Baseline | None = None) -> None:
    """Measure each group in turn; one that fails is recorded in ``report.failed`` and the next one runs."""
    runners = group_runners(captures, calls, runs, baseline)
    with tempfile.TemporaryDirectory(prefix="deskgate-bench-") as tmp:
        for group in groups:
            started = time.monotonic()
            print(f"bench: {group} ...", flush=True)
            try:
                measured = await runners[group](Path(tmp) / group)
            except Exception as exc:  # a failed group must not lose the others' results
                report.failed[group] = f"{type(exc).__name__}: {exc}"
                print(f"bench: {group} FAILED after {time.monotonic() - started:.0f} s: {exc}", file=sys.stderr)
                traceback.print_exc()
                continue
            report.figures += measured.figures
            report.details[group] = measured.details
            print(format_table(measured.figures), f"\nbench: {group} took {time.monotonic() - started:.0f} s\n",
                  flush=True)


def _command(args: argparse.Namespace) -> str:
    """How to reproduce this run."""
    if args.runs == 5 and not args.baseline:
        return "make bench"
    options = [f"--runs {args.runs}"] if args.runs != 5 else []
    options += [f"--baseline {args.baseline}"] if args.baseline else []
    return " ".join(["python -m bench", *options])


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="runs per figure (default 5)")
    parser.add_argument("--only", nargs="+", choices=GROUPS, help="measure only these groups (nothing is written)")
    parser.add_argument("--captures", type=Path, default=CAPTURE_DIR, help=f"default {CAPTURE_DIR}")
    parser.add_argument("--baseline", metavar="REV",
                        help="also measure the gateway at this commit, side by side (throughput, density)")
    args = parser.parse_args()
    if LOAD_CPUS is not None:
        os.sched_setaffinity(0, LOAD_CPUS)
    started = time.monotonic()
    report = Report(started=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
                    command=_command(args))
    captures = load_captures(args.captures)
    calls = load_captures(args.captures, "callcenter")
    # The captures' message lists live until exit: the load's own full collections would walk them and
    # stall every viewer and replay at once, which the latency figures would charge to the proxies.
    freeze_start_up_heap()
    with contextlib.ExitStack() as stack:
        baseline = stack.enter_context(baseline_tree(args.baseline)) if args.baseline else None
        asyncio.run(run_groups(args.only or list(GROUPS), captures, calls, args.runs, report, baseline))
    report.seconds = time.monotonic() - started
    print(format_table(report.figures))
    for group, error in report.failed.items():
        print(f"bench: group {group} failed: {error}", file=sys.stderr)
    if args.only:
        print("bench: a partial run; results.json and README.md were not written", file=sys.stderr)
    else:
        report.write()
        print(f"bench: {len(report.figures)} figures in {report.seconds / 60:.1f} min; wrote bench/results.json "
              "and the table in bench/README.md")
    if report.failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
