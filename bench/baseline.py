"""A baseline: the same gateway at another commit, measured in the same run as a peer.

``python -m bench --baseline REV`` checks ``REV`` out into a temporary git worktree and
starts the baseline's gateway processes from there (its own ``bench.gateway_process``
and packages, the same virtualenv), next to this tree's, so that a change is judged by
runs interleaved with the code it replaces rather than by figures taken another day.
"""

from __future__ import annotations

import contextlib
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bench.processes import BENCH_ROOT


@dataclass(frozen=True, slots=True)
class Baseline:
    """Another commit's tree; ``label`` names it in figures (``commit 79965ec``)."""

    revision: str
    tree: Path

    @property
    def label(self) -> str:
        return f"commit {self.revision}"


@contextlib.contextmanager
def baseline_tree(revision: str) -> Iterator[Baseline]:
    """Check ``revision`` out into a temporary worktree for the run; removed afterwards."""
    commit = _git("rev-parse", "--short", f"{revision}^{{commit}}")
    with tempfile.TemporaryDirectory(prefix="deskgate-baseline-") as tmp:
        tree = Path(tmp) / commit
        _git("worktree", "add", "--detach", str(tree), commit)
        try:
            yield Baseline(commit, tree)
        finally:
            _git("worktree", "remove", "--force", str(tree))


def _git(*args: str) -> str:
    try:
        done = subprocess.run(["git", "-C", str(BENCH_ROOT), *args], check=True, capture_output=True, text=True,
                              timeout=120)
    except subprocess.CalledProcessError as exc:
        raise SystemExit(f"bench: git {' '.join(args)} failed: {exc.stderr.strip()}") from None
    return done.stdout.strip()
