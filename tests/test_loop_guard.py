"""The guard of :mod:`tests.loop_guard` sees a callback that holds the loop, and only that."""

from __future__ import annotations

import asyncio
import gc
import time

import pytest

from tests import loop_guard
from tests.loop_guard import GUARD, MAX_CALLBACK_CPU


def burn(seconds: float) -> None:
    """Hold the calling thread's CPU for ``seconds``."""
    until = time.thread_time() + seconds
    while time.thread_time() < until:
        pass


async def run_callback(callback: object) -> None:
    done = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().call_soon(lambda: (callback(), done.set_result(None)))  # type: ignore[operator]
    await done


async def test_a_callback_that_holds_the_loop_is_reported() -> None:
    await run_callback(lambda: burn(MAX_CALLBACK_CPU * 1.5))
    blocked, GUARD.blocked = GUARD.blocked, []  # seen, and not held against this test
    assert len(blocked) == 1
    assert blocked[0].cpu_seconds > MAX_CALLBACK_CPU and "ms CPU" in str(blocked[0])


async def test_a_callback_that_waits_is_reported_by_its_wall_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loop_guard, "MAX_CALLBACK_WALL", 0.02)
    await run_callback(lambda: time.sleep(loop_guard.wall_allowance() + 0.05))
    blocked, GUARD.blocked = GUARD.blocked, []
    assert len(blocked) == 1
    assert blocked[0].wall_seconds > 0.02 and blocked[0].cpu_seconds < MAX_CALLBACK_CPU


def test_the_wall_allowance_stretches_with_the_machines_load(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loop_guard.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(loop_guard.os, "getloadavg", lambda: (1.0, 0.0, 0.0))
    assert loop_guard.wall_allowance() == loop_guard.MAX_CALLBACK_WALL
    monkeypatch.setattr(loop_guard.os, "getloadavg", lambda: (12.0, 0.0, 0.0))
    assert loop_guard.wall_allowance() == 6 * loop_guard.MAX_CALLBACK_WALL


async def test_short_callbacks_and_the_tests_own_task_are_not() -> None:
    for _ in range(20):
        await run_callback(lambda: burn(MAX_CALLBACK_CPU / 10))
    burn(MAX_CALLBACK_CPU * 1.5)  # in the test's own task: its assertions may be heavy
    await asyncio.sleep(0)
    assert GUARD.blocked == []


async def test_time_in_the_garbage_collector_is_not_counted() -> None:
    garbage = [[index] for index in range(1_500_000)]  # about 0.3 s to collect: over the limit
    for item in garbage:
        item.append(item)  # cycles: only the collector frees them
    del garbage

    def collect() -> None:
        started = time.thread_time()
        gc.collect()
        assert time.thread_time() - started > MAX_CALLBACK_CPU  # the collection alone would have been too long

    await run_callback(collect)
    assert GUARD.blocked == []
