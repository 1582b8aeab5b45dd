"""Uploading a live session's journal from the local spool to the bucket, in segments.

The journal is written to the spool by :class:`~recorder.writer.SessionRecorder`; this
uploader puts what the writer has durably written (``synced_size``, always at a record
boundary) as the next segment every ``segment_bytes`` or ``segment_seconds``, whichever
comes first, and at close the rest and the seal. So a node lost mid-session loses at most
the bytes not yet in a segment. A failed upload is retried with backoff; when bytes have
waited longer than ``deadline`` the ``on_overdue`` callback ends the session (fail-closed).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path

from base.metrics import Metrics
from recorder.seal import seal_path
from recorder.storage import SEAL, ObjectStorage, StorageError, segment_name

log = logging.getLogger(__name__)

#: Defaults of ``storage.segment_bytes``, ``storage.segment_interval`` and ``storage.upload_deadline``.
SEGMENT_BYTES = 8 << 20
SEGMENT_SECONDS = 10.0
UPLOAD_DEADLINE = 60.0
#: First and longest wait between retries of a failed upload.
RETRY_FIRST = 0.25
RETRY_MAX = 5.0


def _read_range(path: Path, start: int, end: int) -> bytes:
    with open(path, "rb") as file:
        file.seek(start)
        return file.read(end - start)


class SegmentUploader:
    """The uploads of one journal; ``durable()`` says how many bytes of it may be uploaded now."""

    def __init__(self, storage: ObjectStorage, recording_id: str, journal: Path, durable: Callable[[], int],
                 metrics: Metrics, *, segment_bytes: int = SEGMENT_BYTES, segment_seconds: float = SEGMENT_SECONDS,
                 deadline: float = UPLOAD_DEADLINE, on_overdue: Callable[[str], None] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if segment_bytes < 1 or segment_seconds <= 0 or deadline <= 0:
            raise ValueError("segment_bytes, segment_seconds and deadline must be positive")
        self._storage = storage
        self.recording_id = recording_id
        self._journal = journal
        self._durable = durable
        self._metrics = metrics
        self._segment_bytes = segment_bytes
        self._segment_seconds = segment_seconds
        self._deadline = deadline
        self._on_overdue = on_overdue
        self._clock = clock
        self.uploaded = 0  # bytes of the journal in the bucket
        self._boundaries: list[int] = []  # end offset of each segment uploaded
        self._waiting_since: float | None = None  # when the oldest byte not uploaded became durable
        self._last_upload = clock()
        self._task: asyncio.Task[None] | None = None

    @property
    def lag(self) -> float:
        """Seconds the oldest durable byte not yet in the bucket has waited (0: none waits)."""
        return 0.0 if self._waiting_since is None else self._clock() - self._waiting_since

    async def upload_pending(self) -> None:
        """Upload what is durable now as one segment, retrying until it succeeds or the deadline passes.

        StorageError when the deadline passed (``on_overdue`` has been called).
        """
        end = self._durable()
        if end <= self.uploaded:
            return
        if self._waiting_since is None:
            self._waiting_since = self._clock()
        data = await asyncio.to_thread(_read_range, self._journal, self.uploaded, end)
        await self._put_with_retries(segment_name(len(self._boundaries) + 1), data)
        self.uploaded = end
        self._boundaries.append(end)
        self._waiting_since = None
        self._last_upload = self._clock()

    async def _put_with_retries(self, name: str, data: bytes) -> None:
        delay = RETRY_FIRST
        while True:
            try:
                await self._storage.put(f"{self.recording_id}/{name}", data)
                self._metrics.recording_upload_bytes_total.inc(len(data))
                return
            except StorageError as exc:
                self._metrics.recording_upload_failures_total.inc()
                waited = self.lag
                log.warning("uploading a recording segment failed", extra={"ctx": {
                    "recording": self.recording_id, "object": name, "waited": round(waited, 1), "error": exc}})
                if waited >= self._deadline:
                    reason = (f"the recording could not be uploaded to object storage for {waited:.0f} s "
                              f"({exc}); the session was ended because it can no longer be recorded safely")
                    if self._on_overdue is not None:
                        self._on_overdue(reason)
                    raise StorageError(reason) from exc
                await asyncio.sleep(min(delay, max(0.05, self._deadline - waited)))
                delay = min(delay * 2, RETRY_MAX)

    def start(self) -> None:
        """Upload segments in the background until :meth:`finish`."""
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        tick = min(1.0, self._segment_seconds / 2)
        try:
            while True:
                await asyncio.sleep(tick)
                pending = self._durable() - self.uploaded
                if pending > 0 and self._waiting_since is None:
                    self._waiting_since = self._clock()
                if pending >= self._segment_bytes or (
                        pending > 0 and self._clock() - self._last_upload >= self._segment_seconds):
                    await self.upload_pending()
                elif self._waiting_since is not None and self.lag >= self._deadline and self._on_overdue:
                    self._on_overdue("the recording could not be uploaded in time")
        except StorageError:
            return  # overdue: the session is ending; finish() tries once more

    async def finish(self, size: int) -> bool:
        """After the seal: stop the background uploads, upload the rest of the journal (``size`` bytes) and the seal.

        Returns False when they could not be uploaded within the deadline (the spool keeps them).
        """
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self._durable = lambda: size
        self._waiting_since = None
        try:
            if size < self.uploaded:  # recovery cut a torn tail: re-put the segment that held it
                while self._boundaries and self._boundaries[-1] > size:
                    self._boundaries.pop()
                self.uploaded = self._boundaries[-1] if self._boundaries else 0
            await self.upload_pending()
            seal = await asyncio.to_thread(seal_path(self._journal).read_bytes)
            self._waiting_since = self._clock()
            await self._put_with_retries(SEAL, seal)
            self._waiting_since = None
            return True
        except (StorageError, OSError) as exc:
            log.error("a finished recording stays in the spool: it could not be uploaded",
                      extra={"ctx": {"recording": self.recording_id, "error": exc}})
            return False

    def resume_after(self, boundaries: list[int]) -> None:
        """Continue a journal whose segments (ending at ``boundaries``) are already in the bucket (recovery)."""
        self._boundaries = list(boundaries)
        self.uploaded = boundaries[-1] if boundaries else 0
