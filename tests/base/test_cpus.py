"""usable_cpus: the CPUs a process may use, from its affinity and its cgroup's CPU quota."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from base.cpus import usable_cpus

AFFINITY = len(os.sched_getaffinity(0))


@pytest.mark.parametrize(("cpu_max", "expected"), [
    pytest.param("max 100000\n", AFFINITY, id="no-quota"),
    pytest.param("100000 100000\n", 1, id="one-cpu"),
    pytest.param("150000 100000\n", min(2, AFFINITY), id="a-part-rounds-up"),
    pytest.param("5000 100000\n", 1, id="less-than-one-is-one"),
    pytest.param(f"{(AFFINITY + 8) * 100000} 100000\n", AFFINITY, id="quota-above-affinity"),
    pytest.param("garbage\n", AFFINITY, id="unreadable"),
    pytest.param("100000 0\n", AFFINITY, id="zero-period"),
])
def test_the_quota_caps_the_affinity(tmp_path: Path, cpu_max: str, expected: int) -> None:
    path = tmp_path / "cpu.max"
    path.write_text(cpu_max)
    assert usable_cpus(path) == expected


def test_without_a_cgroup_file_the_affinity_counts(tmp_path: Path) -> None:
    assert usable_cpus(tmp_path / "missing") == AFFINITY


def test_a_pinned_process_counts_only_its_cpus(tmp_path: Path) -> None:
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(before)})
    try:
        assert usable_cpus(tmp_path / "missing") == 1
    finally:
        os.sched_setaffinity(0, before)
