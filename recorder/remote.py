"""Recordings in object storage, seen from any node: the jobs (recover, index) and local copies.

:class:`JobRunner` claims jobs from :class:`~recorder.jobs.JobQueue` and does them with this
node's spool (local copies of journals, downloaded from the bucket when missing) and render
workers. It runs inside ``deskgate serve`` and ``deskgate worker``.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path

from base.metrics import Metrics
from recorder.errors import RecordingError
from recorder.index import RecordingIndex
from recorder.job_runs import Retries, claim_and_do
from recorder.jobs import Job, JobKind, JobQueue
from recorder.journal import recording_path
from recorder.recovery import finalize_journal
from recorder.rendering import render_video
from recorder.seal import read_seal
from recorder.storage import SEAL, ObjectStorage, StorageError, download_journal, segments
from recorder.upload import SegmentUploader
from recorder.worker import RenderPool

log = logging.getLogger(__name__)

#: Seconds between looks for claimable jobs when none was found.
POLL_SECONDS = 1.0
#: A failed job is tried again after 5 s times its attempts, 5 attempts in all.
RETRIES = Retries(attempts=5, delay=5.0)


@dataclass(frozen=True, slots=True)
class RemoteRecordings:
    """One node's view of the bucket: ``spool`` holds the local copies, ``key`` seals recovered journals."""

    storage: ObjectStorage
    spool: Path
    key: bytes
    upload_deadline: float

    async def local_journal(self, recording_id: str) -> Path | None:
        """The journal in the spool, downloaded with its seal if this node has no sealed copy; None: not stored."""
        path = recording_path(self.spool, recording_id)
        sealed = path.with_name(path.name + ".seal")
        if await asyncio.to_thread(sealed.is_file):
            return path
        return path if await download_journal(self.storage, recording_id, path) else None

    async def recover(self, recording_id: str, metrics: Metrics) -> bool:
        """Finalize and seal a recording whose node died, from its segments; False: there is nothing to recover."""
        path = recording_path(self.spool, recording_id)
        keys = await segments(self.storage, recording_id)
        if not keys:
            return False
        if await self.storage.size(f"{recording_id}/{SEAL}") is not None:
            return True  # the recording node sealed it before it went
        boundaries: list[int] = []
        total = 0
        for key in keys:
            total += await self.storage.size(key) or 0
            boundaries.append(total)
        await download_journal(self.storage, recording_id, path)
        if not await asyncio.to_thread(finalize_journal, path, self.key):
            raise RecordingError(f"{path} is held by a live process on this node")
        size = (await asyncio.to_thread(path.stat)).st_size
        uploader = SegmentUploader(self.storage, recording_id, path, lambda: size, metrics,
                                   deadline=self.upload_deadline)
        uploader.resume_after(boundaries)
        if not await uploader.finish(size):
            raise StorageError(f"the recovered recording {recording_id} could not be uploaded")
        log.warning("recovered a recording whose node died", extra={"ctx": {"recording": recording_id}})
        return True


class JobRunner:
    """Claims and does recorder jobs until stopped."""

    def __init__(self, queue: JobQueue, remote: RemoteRecordings, index: RecordingIndex,
                 render_pool: RenderPool | None, metrics: Metrics, *, poll: float = POLL_SECONDS,
                 ocr: bool = False) -> None:
        self.queue = queue
        self._ocr = ocr  # queue an ``ocr`` job for each recording indexed
        self.remote = remote
        self._index = index
        self._render_pool = render_pool
        self._metrics = metrics
        self._poll = poll

    async def run(self) -> None:
        """Do jobs one after the other, looking for new ones every ``poll`` seconds."""
        while True:
            try:
                self._metrics.jobs_queued.set(await self.queue.waiting())
                done = await self.run_once()
            except Exception:  # the database may be away for a moment: try again later
                log.exception("claiming a recorder job failed")
                done = False
            if not done:
                await asyncio.sleep(self._poll)

    async def run_once(self) -> bool:
        """Claim one job and do it; False when there was none."""
        return await claim_and_do(self.queue, (JobKind.RECOVER, JobKind.INDEX), self._do, self._metrics, RETRIES,
                                  "a recorder job failed") is not None

    async def _do(self, job: Job) -> None:
        if job.kind is JobKind.RECOVER:
            if await self.remote.recover(job.recording_id, self._metrics):
                await self.queue.add(JobKind.INDEX, job.recording_id)
        elif job.kind is JobKind.INDEX:
            await self.index(job.recording_id)

    async def index(self, recording_id: str) -> None:
        """Index a sealed recording from the bucket, render its video and poster and upload them."""
        journal = await self.remote.local_journal(recording_id)
        if journal is None:
            raise RecordingError(f"the recording {recording_id} is not in object storage")
        sha256 = await asyncio.to_thread(lambda: read_seal(journal).sha256)
        await self._index.add_journal(journal, sha256, self.queue.node)
        if self._ocr:
            await self.queue.add(JobKind.OCR, recording_id)
        if self._render_pool is not None:
            await render_video(self._index, self._render_pool, recording_id, journal, bucket=self.remote.storage)
