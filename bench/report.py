"""Figures, their statistics, the printed table, ``results.json`` and the README's table.

Every figure is ours against a peer measured in the same run (median of the runs, with
min and max), with the issue's target where it sets one; a figure without a peer (density,
rendering, login) stands alone.
"""

from __future__ import annotations

import json
import os
import platform
import re
import statistics
import subprocess
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_PATH = BENCH_DIR / "results.json"
README_PATH = BENCH_DIR / "README.md"
README_BEGIN = "<!-- bench:results:begin (written by `make bench`) -->"
README_END = "<!-- bench:results:end -->"


@dataclass(frozen=True, slots=True)
class Summary:
    """The median of several runs, with their min, max and every value."""

    median: float
    min: float
    max: float
    runs: tuple[float, ...]

    @classmethod
    def of(cls, values: Sequence[float]) -> Summary:
        if not values:
            raise ValueError("no runs to summarise")
        return cls(statistics.median(values), min(values), max(values), tuple(values))

    def text(self, digits: int) -> str:
        if len(self.runs) == 1:
            return f"{self.median:.{digits}f}"
        return f"{self.median:.{digits}f} [{self.min:.{digits}f}–{self.max:.{digits}f}]"


@dataclass(slots=True)
class Figure:
    """One line of the table."""

    key: str
    title: str
    unit: str
    ours: Summary | None = None
    peer: Summary | None = None
    peer_name: str = ""
    higher_is_better: bool = True
    target_ratio: float | None = None  # ours/peer must reach it (or stay under it when lower is better)
    target_value: float | None = None  # ours alone must reach it (or stay under it)
    target_text: str = ""
    digits: int = 1
    note: str = ""
    condition_met: bool = True  # a further condition of the target (e.g. the picture quality of a render speed)

    @property
    def ratio(self) -> float | None:
        if self.ours is None or self.peer is None or self.peer.median == 0:
            return None
        return self.ours.median / self.peer.median

    @property
    def met(self) -> bool | None:
        """Whether the issue's target is reached (None: no target, or not measured)."""
        if not self.condition_met and (self.target_ratio is not None or self.target_value is not None):
            return False
        if self.target_ratio is not None and self.ratio is not None:
            reached = self.ratio >= self.target_ratio if self.higher_is_better else self.ratio <= self.target_ratio
            return bool(reached)
        if self.target_value is not None and self.ours is not None:
            value = self.ours.median
            return bool(value >= self.target_value if self.higher_is_better else value <= self.target_value)
        return None


@dataclass(slots=True)
class Measured:
    """What one figure module measured: lines of the table, and the raw numbers behind them."""

    figures: list[Figure]
    details: dict[str, object]


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0–100), linearly interpolated."""
    return float(np.percentile(np.asarray(values, dtype=float), q))


def machine() -> dict[str, object]:
    """What the figures were taken on."""
    model = "unknown"
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as meminfo:
        total_kib = int(next(line for line in meminfo if line.startswith("MemTotal:")).split()[1])
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "memory_gib": round(total_kib / (1 << 20), 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "git_commit": _git_commit(),
    }


def _git_commit() -> str:
    """The checked-out commit, with ``+changes`` when tracked files differ from it."""
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=BENCH_DIR, timeout=10).stdout.strip()
        changed = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                                 text=True, cwd=BENCH_DIR, timeout=10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return (commit or "unknown") + ("+changes" if changed else "")


def _cells(figure: Figure) -> list[str]:
    ours = figure.ours.text(figure.digits) if figure.ours else "–"
    peer = f"{figure.peer.text(figure.digits)} ({figure.peer_name})" if figure.peer else "–"
    ratio = f"{figure.ratio:.2f}×" if figure.ratio is not None else ""
    met = {True: "yes", False: "NO", None: ""}[figure.met]
    return [figure.title, figure.unit, ours, peer, ratio, figure.target_text, met, figure.note]


_HEADINGS = ["figure", "unit", "deskgate: median [min–max]", "peer: median [min–max]", "ratio", "target",
             "met", "note"]


def format_table(figures: Sequence[Figure]) -> str:
    """A plain-text table for the terminal."""
    rows = [_HEADINGS] + [_cells(figure) for figure in figures]
    widths = [max(len(row[column]) for row in rows) for column in range(len(_HEADINGS) - 1)]
    lines = []
    for index, row in enumerate(rows):
        lines.append("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[-1])
        if index == 0:
            lines.append("  ".join("-" * width for width in widths) + "  ----")
    return "\n".join(line.rstrip() for line in lines)


def format_markdown(figures: Sequence[Figure]) -> str:
    rows = [_HEADINGS, ["---"] * len(_HEADINGS)] + [_cells(figure) for figure in figures]
    return "\n".join("| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows)


@dataclass(slots=True)
class Report:
    figures: list[Figure] = field(default_factory=list)
    machine: dict[str, object] = field(default_factory=machine)
    started: str = ""
    seconds: float = 0.0
    command: str = "make bench"
    details: dict[str, object] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)  # group -> what went wrong

    def to_json(self) -> dict[str, object]:
        figures = {}
        for figure in self.figures:
            entry = asdict(figure)
            entry.update(ratio=figure.ratio, met=figure.met)
            figures[figure.key] = entry
        return {"started": self.started, "seconds": round(self.seconds, 1), "command": self.command,
                "machine": self.machine, "failed": self.failed, "figures": figures, "details": self.details}

    def write(self, results: Path = RESULTS_PATH, readme: Path = README_PATH) -> None:
        """Write ``results.json`` (atomically) and the table between the README's markers."""
        temporary = results.with_name(results.name + ".tmp")
        temporary.write_text(json.dumps(self.to_json(), indent=2, ensure_ascii=False) + "\n")
        temporary.replace(results)
        if readme.exists():
            text = readme.read_text()
            pattern = re.compile(re.escape(README_BEGIN) + ".*?" + re.escape(README_END), re.S)
            if pattern.search(text):
                info = self.machine
                block = (f"{README_BEGIN}\nTaken {self.started} in {self.seconds / 60:.1f} min on {info['nproc']} "
                         f"cores ({info['cpu_model']}), {info['memory_gib']} GiB, Linux {info['kernel']}, Python "
                         f"{info['python']}, commit {info['git_commit']}; reproduce with `{self.command}`.\n\n"
                         + "".join(f"**Group {group} failed** in this run: {error}\n\n"
                                   for group, error in self.failed.items())
                         + f"{format_markdown(self.figures)}\n{README_END}")
                readme.write_text(pattern.sub(lambda _: block, text))
