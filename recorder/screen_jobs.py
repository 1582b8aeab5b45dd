"""Reading recordings' screen text as recorder jobs, in worker processes, off the event loop.

Once a recording is indexed, an ``ocr`` job is queued (:class:`~recorder.jobs.JobQueue`). Any node whose
``ocr.enabled`` is on claims such jobs (:class:`ScreenTextJobs`, only this kind: OCR never holds up
indexing or rendering) and has the recording read (:func:`~recorder.screen_index.read_recording_text`)
in a :class:`ScreenTextPool`: *spawned* processes, each running one Tesseract at a time on one core.
The event loop only stores what was found (:class:`~recorder.screen_search.ScreenTexts`), counts the
personal data by kind (``deskgate_pii_detected_total``) and the cost (session and CPU seconds). Log
lines name the recording and the counts, never a text read.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
from collections import Counter
from collections.abc import Awaitable, Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from base.metrics import Metrics
from recorder.errors import RecordingError
from recorder.job_runs import Retries, claim_and_do
from recorder.jobs import Job, JobKind, JobQueue
from recorder.keyring import RecordingKeyring, install
from recorder.screen_index import RecordingText, ScreenTextOptions, read_recording_text
from recorder.screen_search import ScreenTexts

log = logging.getLogger(__name__)

#: Seconds between looks for claimable jobs when none was found.
POLL_SECONDS = 2.0
#: A failed job is tried again after 30 s times its attempts, 3 attempts in all.
RETRIES = Retries(attempts=3, delay=30.0)
#: Where a recording's journal is, on this node; None: it is not stored (any more).
JournalLocator = Callable[[str], Awaitable[Path | None]]
#: Told a recording's id (here: that its screen showed personal data).
RecordingCallback = Callable[[str], Awaitable[None]]


class ScreenTextPool:
    """``workers`` spawned processes reading recordings' text, one recording each at a time.

    Each worker installs ``keyring`` (the recording keys) to read encrypted journals.
    """

    def __init__(self, workers: int, keyring: RecordingKeyring | None = None) -> None:
        if workers < 1:
            raise ValueError(f"an OCR pool needs at least one worker, not {workers}")
        self._workers = workers
        self._keyring = keyring or RecordingKeyring((), None)
        self._context = multiprocessing.get_context("spawn")
        self._executor = self._new_executor()

    async def read(self, journal: Path, options: ScreenTextOptions) -> RecordingText:
        """Read ``journal`` in a worker; a worker that dies fails only this read, with a RecordingError."""
        executor = self._executor
        try:
            return await asyncio.get_running_loop().run_in_executor(executor, read_recording_text, journal, options)
        except BrokenProcessPool as exc:
            if self._executor is executor:
                self._executor = self._new_executor()
                executor.shutdown(wait=False, cancel_futures=True)
            raise RecordingError(f"the worker reading {journal.name} died before finishing (killed or crashed)") \
                from exc

    async def close(self) -> None:
        """Stop the workers now, not after a long recording: a job cut short is released and read again later."""
        processes = getattr(self._executor, "_processes", None) or {}  # the executor has no public way to stop them
        for process in list(processes.values()):
            process.terminate()
        await asyncio.to_thread(self._executor.shutdown, wait=True, cancel_futures=True)

    def _new_executor(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(max_workers=self._workers, mp_context=self._context,
                                   initializer=install, initargs=(self._keyring,))


class ScreenTextJobs:
    """Claims ``ocr`` jobs and does them until cancelled, ``concurrency`` at once (one per pool worker)."""

    def __init__(self, queue: JobQueue, texts: ScreenTexts, pool: ScreenTextPool, metrics: Metrics,
                 options: ScreenTextOptions, locate: JournalLocator, *, concurrency: int = 1,
                 poll: float = POLL_SECONDS, found_on_screen: RecordingCallback | None = None) -> None:
        self.queue = queue
        self._texts = texts
        self._pool = pool
        self._metrics = metrics
        self._options = options
        self._locate = locate
        self._concurrency = concurrency
        self._poll = poll
        self._found_on_screen = found_on_screen  # awaited when a screen showed personal data (render it again)

    async def run(self) -> None:
        """Claim and do jobs, ``concurrency`` loops side by side."""
        async with asyncio.TaskGroup() as group:
            for _ in range(self._concurrency):
                group.create_task(self._loop())

    async def _loop(self) -> None:
        while True:
            try:
                done = await self.run_once()
            except Exception:  # the database may be away for a moment: try again later
                log.exception("claiming an OCR job failed")
                done = False
            if not done:
                await asyncio.sleep(self._poll)

    async def run_once(self) -> bool:
        """Claim one ``ocr`` job and do it; False when there was none."""
        outcome = await claim_and_do(self.queue, (JobKind.OCR,), self._do, self._metrics, RETRIES,
                                     "reading a recording's screen text failed")
        if outcome is None:
            return False
        job, shown = outcome
        if shown and self._found_on_screen is not None:
            await self._found_on_screen(job.recording_id)
        return True

    async def _do(self, job: Job) -> bool:
        """Read the recording's screen text and store it; True if personal data was on its screen."""
        journal = await self._locate(job.recording_id)
        if journal is None:
            log.warning("no journal to read screen text from (deleted?)", extra={"ctx": {"recording": job.recording_id}})
            return False
        renew = asyncio.create_task(self._renew(job))
        try:
            found = await self._pool.read(journal, self._options)
        finally:
            renew.cancel()
        await self._texts.replace(job.recording_id, found)
        kinds = Counter(finding.kind for finding in found.findings)
        for kind, count in kinds.items():
            self._metrics.pii_detected_total.labels(kind=kind).inc(count)
        self._metrics.ocr_session_seconds_total.inc(found.duration)
        self._metrics.ocr_cpu_seconds_total.inc(found.cpu_seconds)
        context = {"recording": job.recording_id, "lines": len(found.lines), "regions": found.regions,
                   "findings": dict(kinds), "session_seconds": round(found.duration, 1),
                   "cpu_seconds": round(found.cpu_seconds, 1)}
        if found.error is not None:
            log.warning("screen text read in part", extra={"ctx": {**context, "error": found.error}})
        else:
            log.info("screen text read", extra={"ctx": context})
        return any(finding.region is not None for finding in found.findings)

    async def _renew(self, job: Job) -> None:
        """Keep the job's lease while the worker reads: a long recording takes longer than a lease."""
        while True:
            await asyncio.sleep(self.queue.lease / 3)
            with contextlib.suppress(Exception):
                await self.queue.renew_all(job.kind, [job.recording_id])
