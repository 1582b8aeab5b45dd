"""The processes under measurement — the gateway, websockify — started, read from /proc, and stopped.

Each runs in a process group of its own (so stopping it reaches whatever it forks:
websockify forks a process per connection), optionally pinned to CPUs with ``taskset``,
with its output in a log file. CPU time and memory are summed over the process and its
live descendants; a reaped child's CPU time is in its parent's ``cutime``/``cstime``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_STOP_TIMEOUT = 5.0
_READY_TIMEOUT = 20.0
BENCH_ROOT = Path(__file__).resolve().parent.parent
#: Debian's websockify (``deploy/install-system-deps.sh``), with numpy: outside deskgate's venv.
WEBSOCKIFY = Path("/usr/bin/websockify")


class ProcessFailed(Exception):
    """A process under measurement did not start, or died."""


@dataclass(slots=True)
class ManagedProcess:
    """A started process group and where its output goes."""

    name: str
    process: asyncio.subprocess.Process
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def cpu_seconds(self) -> float:
        """User + system CPU time of the process, its live descendants and their reaped children."""
        return sum(_cpu_ticks(pid) for pid in (self.pid, *descendants(self.pid))) / _CLOCK_TICKS

    def memory_bytes(self) -> int:
        """Proportional set size (PSS) of the process and its descendants: shared pages counted once."""
        return sum(_pss_bytes(pid) for pid in (self.pid, *descendants(self.pid)))

    def check_alive(self) -> None:
        if self.process.returncode is not None:
            raise ProcessFailed(f"{self.name} exited with status {self.process.returncode}: {self.log_tail()}")

    def log_tail(self, limit: int = 1500) -> str:
        try:
            return self.log_path.read_bytes()[-limit:].decode(errors="replace").strip() or "(empty log)"
        except OSError:
            return "(no log)"

    async def stop(self) -> None:
        """SIGTERM the group, SIGKILL it after a bounded wait."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, sig)
            try:
                async with asyncio.timeout(_STOP_TIMEOUT):
                    await self.process.wait()
            except TimeoutError:
                continue
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGKILL)  # leftovers of the group (websockify's children)
            return


async def start_process(name: str, command: Sequence[str], log_path: Path, *, cpus: Sequence[int] | None = None,
                        stdout_json: bool = False, cwd: Path = BENCH_ROOT) -> tuple[ManagedProcess, dict[str, object]]:
    """Start ``command`` in a group of its own, in ``cwd``; with ``stdout_json``, wait for the JSON line it prints."""
    if cpus is not None:
        command = ["taskset", "-c", ",".join(map(str, cpus)), *command]
    with log_path.open("ab") as log:
        process = await asyncio.create_subprocess_exec(
            *command, stdin=asyncio.subprocess.DEVNULL, stderr=log,
            stdout=asyncio.subprocess.PIPE if stdout_json else log,
            start_new_session=True, cwd=cwd,
        )  # fmt: skip
    managed = ManagedProcess(name, process, log_path)
    if not stdout_json:
        return managed, {}
    assert process.stdout is not None
    try:
        async with asyncio.timeout(_READY_TIMEOUT):
            line = await process.stdout.readline()
        if not line:
            raise ProcessFailed(f"{name} exited before it was ready: {managed.log_tail()}")
        return managed, json.loads(line)
    except BaseException:
        await managed.stop()
        raise


async def wait_for_port(managed: ManagedProcess, port: int) -> None:
    """Wait (bounded) until ``port`` on 127.0.0.1 accepts connections."""
    async with asyncio.timeout(_READY_TIMEOUT):
        while True:
            managed.check_alive()
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                await asyncio.sleep(0.05)
                continue
            writer.close()
            return


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def start_websockify(target_port: int, log_path: Path, *, cpus: Sequence[int] | None = None,
                           record: Path | None = None) -> tuple[ManagedProcess, str]:
    """websockify in front of ``target_port``, optionally ``--record``-ing; returns it and its ws:// URL."""
    port = free_port()
    options = [f"--record={record}"] if record is not None else []
    managed, _ = await start_process("websockify", [str(WEBSOCKIFY), *options, f"127.0.0.1:{port}",
                                                   f"127.0.0.1:{target_port}"], log_path, cpus=cpus)
    try:
        await wait_for_port(managed, port)
    except BaseException:
        await managed.stop()
        raise
    return managed, f"ws://127.0.0.1:{port}/"


async def start_gateway_process(config_path: Path, log_path: Path, *, recording: bool = True,
                                cpus: Sequence[int] | None = None, tree: Path = BENCH_ROOT,
                                ) -> tuple[ManagedProcess, str]:
    """The gateway of ``tree`` in its own process (its :mod:`bench.gateway_process`); returns it and its URL.

    ``python -m`` puts the working directory first on ``sys.path``: the process runs ``tree``'s code.
    """
    command = [sys.executable, "-m", "bench.gateway_process", str(config_path),
               "--recording", "on" if recording else "off"]
    managed, ready = await start_process("gateway", command, log_path, cpus=cpus, stdout_json=True, cwd=tree)
    return managed, str(ready["url"])


def descendants(root: int) -> set[int]:
    """Every live descendant of ``root`` (Linux /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as stat:
                fields = stat.read().rpartition(b")")[2].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    found: set[int] = set()
    pending = [root]
    while pending:
        for child in children.get(pending.pop(), []):
            if child not in found:
                found.add(child)
                pending.append(child)
    return found


def _cpu_ticks(pid: int) -> int:
    """utime + stime + cutime + cstime of ``pid`` (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            fields = stat.read().rpartition(b")")[2].split()
    except OSError:
        return 0
    # After the ")" that ends the command name: state is field 3, utime field 14 (index 11 here).
    return sum(int(value) for value in fields[11:15])


def _pss_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as rollup:
            for line in rollup:
                if line.startswith(b"Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0
