"""Render recordings to video in worker processes, off the gateway's event loop.

Decoding and H.264 encoding are CPU-bound for minutes at a time: they run in a
``ProcessPoolExecutor`` whose workers are *spawned* (a fresh interpreter, not a
fork of the gateway with its event loop, sockets and threads). The event loop
only awaits the result.
"""

from __future__ import annotations

import asyncio
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from base.metrics import Metrics
from recorder.errors import RecordingError
from recorder.render import RenderResult, render_journal


class RenderPool:
    """A pool of ``workers`` render processes; ``metrics`` (optional) gets the queue length and render times."""

    def __init__(self, workers: int, metrics: Metrics | None = None) -> None:
        if workers < 1:
            raise ValueError(f"a render pool needs at least one worker, not {workers}")
        self._workers = workers
        self._metrics = metrics
        self._executor = self._new_executor()
        self._closed = False

    async def submit(self, journal: Path, output: Path) -> RenderResult:
        """Render ``journal`` to ``output`` in a worker; the render's own exceptions are raised here.

        A worker that dies (killed, out of memory, crashed) fails only the renders it
        took down, with a RecordingError; the pool starts fresh workers for the next.
        """
        if self._closed:
            raise RuntimeError("the render pool is closed")
        metrics = self._metrics
        if metrics is not None:
            metrics.render_queue_length.inc()
        executor = self._executor
        try:
            future = asyncio.get_running_loop().run_in_executor(executor, render_journal, journal, output)
            result = await future
        except BrokenProcessPool as exc:
            self._replace_broken(executor)
            raise RecordingError(
                f"the worker rendering {journal.name} died before finishing (killed or crashed); "
                "the render pool has started new workers, submit the recording again"
            ) from exc
        finally:
            if metrics is not None:
                metrics.render_queue_length.dec()
        if metrics is not None:
            metrics.render_seconds.observe(result.wall_seconds)
        return result

    async def close(self) -> None:
        """Cancel queued renders, wait for running ones, and stop the workers."""
        self._closed = True
        await asyncio.to_thread(self._executor.shutdown, wait=True, cancel_futures=True)

    def _replace_broken(self, broken: ProcessPoolExecutor) -> None:
        # Several renders fail together when a pool breaks: only the first replaces it.
        if self._executor is broken and not self._closed:
            self._executor = self._new_executor()
            broken.shutdown(wait=False, cancel_futures=True)

    def _new_executor(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(max_workers=self._workers, mp_context=multiprocessing.get_context("spawn"))
