"""Render recordings to video in worker processes, off the gateway's event loop.

Decoding and H.264 encoding are CPU-bound for minutes at a time: they run in a
``ProcessPoolExecutor`` whose workers are *spawned* (a fresh interpreter, not a
fork of the gateway with its event loop, sockets and threads). The event loop
only awaits the result.

A render may report its progress (a clip export's progress bar): every worker gets the
pool's shared array of progress slots when it starts; a render given a slot writes the
fraction done into it, and the event loop reads the slot every ``progress_interval``
seconds. One float per render, no messages, no locks.

Every render is masked (:mod:`recorder.masking`): the worker reads the mask sets recorded with
the journal and hides them, plus any ``extra_masks`` (timed, e.g. personal data found on
screen); only ``unmasked=True`` (an audited request of someone allowed to ``unmask``) renders
the original pixels.

Workers also get the pool's recording keyring: they read encrypted journals with it and,
when it has a current key, encrypt what they write (video, poster, clip) in place before the
render counts as done (:mod:`recorder.encrypted_files`).
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

from base.metrics import Metrics
from recorder.encrypted_files import encrypt_in_place
from recorder.errors import RecordingError
from recorder.journal import JOURNAL_SUFFIX
from recorder.keyring import RecordingKeyring, install, installed
from recorder.masking import TimedMask, recorded_masks, whole_recording
from recorder.render import DEFAULT_MAX_FPS, RenderResult, render_journal

log = logging.getLogger(__name__)

#: Renders that may report progress at once; one more waits for a free slot to report.
PROGRESS_SLOTS = 8

_progress_slots: Any = None  # in a worker process: the pool's shared progress array


def _start_worker(slots: Any, keyring: RecordingKeyring) -> None:
    """A worker's initializer: keep the pool's progress array, install its recording keys."""
    global _progress_slots
    _progress_slots = slots
    install(keyring)


def _render(journal: Path, output: Path, poster: Path | None, start: float, end: float | None,
            slot: int | None, max_fps: float, unmasked: bool = False,
            extra_masks: Sequence[TimedMask] = ()) -> RenderResult:
    """In a worker: render (masked unless ``unmasked``), writing the fraction done into ``slot`` if given one."""

    def report(fraction: float) -> None:
        _progress_slots[slot] = fraction

    masks = () if unmasked else (*whole_recording(recorded_masks(journal)), *extra_masks)
    result = render_journal(journal, output, progress=report if slot is not None else None, poster=poster,
                            start=start, end=end, masks=masks, max_fps=max_fps)
    keyring = installed()
    if keyring.current is not None:
        recording_id = journal.name.removesuffix(JOURNAL_SUFFIX)
        for written in (output, result.poster):
            if written is not None and written.is_file():
                encrypt_in_place(written, keyring, recording_id)
    return result


class RenderPool:
    """A pool of ``workers`` render processes; ``metrics`` (optional) gets their count, the queue length, render
    times, and the CPU time spent against the seconds of session rendered (what sizes the pool).

    Every video has ``max_fps`` frames a second at most (``storage.export_fps``).
    """

    def __init__(self, workers: int, metrics: Metrics | None = None, *, progress_slots: int = PROGRESS_SLOTS,
                 progress_interval: float = 0.25, max_fps: float = DEFAULT_MAX_FPS,
                 keyring: RecordingKeyring | None = None) -> None:
        if workers < 1:
            raise ValueError(f"a render pool needs at least one worker, not {workers}")
        if progress_slots < 1 or progress_interval <= 0:
            raise ValueError("progress_slots and progress_interval must be positive")
        self._workers = workers
        self._max_fps = max_fps
        self._keyring = keyring or RecordingKeyring((), None)  # no current key: outputs stay plain
        self._metrics = metrics
        if metrics is not None:
            metrics.render_workers.set(workers)
        self._context = multiprocessing.get_context("spawn")
        self._progress = self._context.RawArray("d", progress_slots)
        self._free_slots = list(range(progress_slots))
        self._progress_interval = progress_interval
        self._executor = self._new_executor()
        self._closed = False

    async def submit(self, journal: Path, output: Path, *, poster: Path | None = None, start: float = 0.0,
                     end: float | None = None,
                     progress: Callable[[float], Awaitable[None]] | None = None, unmasked: bool = False,
                     extra_masks: Sequence[TimedMask] = ()) -> RenderResult:
        """Render ``journal`` (or ``start`` to ``end`` of it) to ``output`` in a worker; see :func:`render_journal`.

        The recording's masks and ``extra_masks`` hide their regions unless ``unmasked``.

        ``progress`` is awaited with the fraction done as it grows, while a progress slot is
        free. The render's own exceptions are raised here. A worker that dies (killed, out of
        memory, crashed) fails only the renders it took down, with a RecordingError; the pool
        starts fresh workers for the next.
        """
        if self._closed:
            raise RuntimeError("the render pool is closed")
        metrics = self._metrics
        if metrics is not None:
            metrics.render_queue_length.inc()
        executor = self._executor
        slot = self._free_slots.pop() if progress is not None and self._free_slots else None
        try:
            if slot is not None:
                self._progress[slot] = 0.0
            future = asyncio.get_running_loop().run_in_executor(executor, _render, journal, output, poster, start,
                                                                end, slot, self._max_fps, unmasked,
                                                                tuple(extra_masks))
            if slot is not None and progress is not None:
                await self._follow(future, slot, progress)
            result = await future
        except BrokenProcessPool as exc:
            self._replace_broken(executor)
            raise RecordingError(
                f"the worker rendering {journal.name} died before finishing (killed or crashed); "
                "the render pool has started new workers, submit the recording again"
            ) from exc
        finally:
            if slot is not None:
                self._free_slots.append(slot)
            if metrics is not None:
                metrics.render_queue_length.dec()
        if metrics is not None:
            metrics.render_seconds.observe(result.wall_seconds)
            metrics.render_cpu_seconds_total.inc(result.cpu_seconds)
            metrics.render_video_seconds_total.inc(result.duration)
        return result

    async def close(self) -> None:
        """Cancel queued renders, wait for running ones, and stop the workers."""
        self._closed = True
        await asyncio.to_thread(self._executor.shutdown, wait=True, cancel_futures=True)

    async def _follow(self, future: asyncio.Future[RenderResult], slot: int,
                      progress: Callable[[float], Awaitable[None]]) -> None:
        """Hand the slot's fraction to ``progress`` whenever it grew, until the render is done."""
        reported = 0.0
        while not future.done():
            await asyncio.wait([future], timeout=self._progress_interval)
            fraction = self._progress[slot]
            if fraction > reported and not future.done():
                reported = fraction
                try:
                    await progress(fraction)
                except Exception:  # the render goes on; only its progress is not shown
                    log.exception("reporting a render's progress failed", extra={"ctx": {"fraction": fraction}})

    def _replace_broken(self, broken: ProcessPoolExecutor) -> None:
        # Several renders fail together when a pool breaks: only the first replaces it.
        if self._executor is broken and not self._closed:
            self._executor = self._new_executor()
            broken.shutdown(wait=False, cancel_futures=True)

    def _new_executor(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(max_workers=self._workers, mp_context=self._context,
                                   initializer=_start_worker, initargs=(self._progress, self._keyring))
