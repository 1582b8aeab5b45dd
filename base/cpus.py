"""How many CPUs this process may use: its affinity, capped by a cgroup v2 CPU quota.

``os.cpu_count()`` is the machine's count. In a container (a Kubernetes CPU limit, ``docker run
--cpus``) or under ``taskset`` the process may use far fewer, and a pool sized from the machine's count
(64 render processes in a pod limited to 2 CPUs) only thrashes and runs out of memory.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

#: This process's cgroup v2 CPU limit: ``"<quota> <period>"`` in microseconds, or ``"max <period>"``.
CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")


def usable_cpus(cpu_max: Path = CGROUP_CPU_MAX) -> int:
    """The CPUs this process may run on, at most its cgroup's quota rounded up (at least 1)."""
    count = len(os.sched_getaffinity(0))
    try:
        quota, period = cpu_max.read_text().split()
        limit = math.ceil(int(quota) / int(period)) if quota != "max" else count
    except (OSError, ValueError, ZeroDivisionError):  # no cgroup v2 here, or a file this does not understand
        limit = count
    return max(1, min(count, limit))
