"""Fail any test whose code under test blocked the event loop (in the spirit of aiohttp's blockbuster).

Every callback the loop runs — each step of each task, each transport callback — is timed
on the loop's thread. One that spends more than :data:`MAX_CALLBACK_CPU` seconds of that
thread's CPU time held the loop that long: every other session, login and health check
waited. CPU time, not wall time, so that a busy shared machine does not fail a correct
test; a callback that *waits* instead (``time.sleep``, blocking I/O) is caught by its wall
time over :data:`MAX_CALLBACK_WALL`. Time in the garbage collector is left out: a
collection may fall into any callback, and it is the interpreter's pause, not the code's.

Judged is the code under test — the gateway's request handlers, sessions, background
tasks, and the protocol callbacks beneath them — not the test's own task or its fixtures'
set-up, which may compare screenshots or decode a video between two awaits. CPU-heavy work
of the product belongs in worker threads or processes, which are not watched.
"""

from __future__ import annotations

import asyncio
import asyncio.events
import gc
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

#: The most CPU time one callback may take on the loop's thread.
MAX_CALLBACK_CPU = 0.1
#: The most wall time one callback may take on an idle machine: more is a blocking wait, not a slow machine.
MAX_CALLBACK_WALL = 1.0


def wall_allowance() -> float:
    """:data:`MAX_CALLBACK_WALL`, stretched by how oversubscribed the machine's CPUs are right now.

    A callback that runs 13 ms of CPU may wait seconds for a core on a machine loaded ten
    times over; a blocking wait shows as wall time far beyond its CPU time on an idle one.
    """
    load = os.getloadavg()[0] / (os.cpu_count() or 1)
    return MAX_CALLBACK_WALL * max(1.0, load)


#: Where the coroutines of the tests themselves and of their fixtures' set-up are defined.
TEST_CODE = (str(Path(__file__).resolve().parent) + "/", "/site-packages/pytest_asyncio/")


@dataclass(frozen=True, slots=True)
class Blocked:
    callback: str
    cpu_seconds: float
    wall_seconds: float

    def __str__(self) -> str:
        return f"{self.callback}: {self.cpu_seconds * 1000:.0f} ms CPU, {self.wall_seconds * 1000:.0f} ms wall"


class LoopGuard:
    """Times every loop callback of this process; the fixture below reads and clears what it saw."""

    def __init__(self) -> None:
        self.blocked: list[Blocked] = []
        self._original_run: Callable[[asyncio.Handle], None] | None = None
        self._gc_cpu: dict[int, float] = {}  # per thread: CPU seconds spent collecting garbage so far
        self._gc_wall: dict[int, float] = {}  # per thread: wall seconds of the same collections
        self._gc_started: dict[int, tuple[float, float]] = {}

    def _on_gc(self, phase: str, info: dict[str, int]) -> None:
        thread, cpu, wall = threading.get_ident(), time.thread_time(), time.perf_counter()
        if phase == "start":
            self._gc_started[thread] = cpu, wall
        elif thread in self._gc_started:
            started_cpu, started_wall = self._gc_started.pop(thread)
            self._gc_cpu[thread] = self._gc_cpu.get(thread, 0.0) + cpu - started_cpu
            self._gc_wall[thread] = self._gc_wall.get(thread, 0.0) + wall - started_wall

    def install(self) -> None:
        original_run = self._original_run = asyncio.events.Handle._run
        guard, gc_cpu, gc_wall = self, self._gc_cpu, self._gc_wall

        def timed_run(handle: asyncio.Handle) -> None:
            thread = threading.get_ident()
            cpu, wall = time.thread_time(), time.perf_counter()
            collecting_cpu, collecting_wall = gc_cpu.get(thread, 0.0), gc_wall.get(thread, 0.0)
            try:
                original_run(handle)
            finally:
                cpu = time.thread_time() - cpu - (gc_cpu.get(thread, 0.0) - collecting_cpu)
                wall = time.perf_counter() - wall - (gc_wall.get(thread, 0.0) - collecting_wall)
                if (cpu > MAX_CALLBACK_CPU or wall > wall_allowance()) and not _is_test_code(handle):
                    guard.blocked.append(Blocked(_describe(handle), cpu, wall))

        asyncio.events.Handle._run = timed_run  # type: ignore[method-assign,assignment]
        gc.callbacks.append(self._on_gc)

    def uninstall(self) -> None:
        if self._original_run is not None:
            asyncio.events.Handle._run = self._original_run  # type: ignore[method-assign,assignment]
        if self._on_gc in gc.callbacks:
            gc.callbacks.remove(self._on_gc)


def _task_code(handle: asyncio.Handle) -> tuple[asyncio.Task[Any], Any] | None:
    """The task a handle steps, and its coroutine's code object; None for other callbacks."""
    owner = getattr(getattr(handle, "_callback", None), "__self__", None)
    if isinstance(owner, asyncio.Task):
        return owner, getattr(owner.get_coro(), "cr_code", None)
    return None


def _is_test_code(handle: asyncio.Handle) -> bool:
    stepped = _task_code(handle)
    if stepped is None or stepped[1] is None:
        return False
    filename = stepped[1].co_filename
    return any(place in filename for place in TEST_CODE)


def _describe(handle: asyncio.Handle) -> str:
    stepped = _task_code(handle)
    if stepped is not None:
        owner, code = stepped
        coroutine = owner.get_coro()
        frame = getattr(coroutine, "cr_frame", None)
        where = f" at {code.co_filename}:{frame.f_lineno if frame else code.co_firstlineno}" if code else ""
        return f"task {owner.get_name()} ({getattr(coroutine, '__qualname__', coroutine)}){where}"
    return repr(handle)


GUARD = LoopGuard()


@pytest.fixture(autouse=True)
def event_loop_never_blocks() -> Iterator[None]:
    """Fail the test if any loop callback during it (its fixtures included) blocked the loop."""
    GUARD.blocked.clear()
    yield
    blocked, GUARD.blocked = GUARD.blocked, []
    if blocked:
        pytest.fail("the event loop was blocked:\n  " + "\n  ".join(map(str, blocked)), pytrace=False)
