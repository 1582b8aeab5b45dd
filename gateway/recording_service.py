"""The gateway's recordings: where each session's journal goes, and what happens when it ends.

:class:`RecordingService` is built once per gateway from ``storage`` (directory, fsync
interval, recording key) and the shared services, by :func:`recording_service` (the
factory ``create_app`` uses unless it is given another). A desktop or terminal session asks it for a
:class:`~recorder.writer.SessionRecorder` before the browser's handshake completes
(fail-closed: no journal, no session), and hands the journal back when the session ends;
the service seals it, then indexes it for search and renders its video in a worker
process, in the background, with a poster (its first picture with content, as a JPEG next to
the video). At start-up :meth:`~RecordingService.recover` finalizes the journals a crashed
gateway left open and indexes them like any other.

Reviewers export clips (a stretch of a recording, to MP4) through :meth:`~RecordingService.export_clip`:
each is rendered in the same worker pool, its progress kept in the database so that any
gateway can show it. How many may be under way, at all and per person, is bounded.

Everything about the journals themselves (format, writer, seal, index, render) is in
:mod:`recorder`; this module adds what only the gateway knows: the session, its policy, audit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import platform
import time
from collections.abc import AsyncIterator, Coroutine, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from base.cpus import usable_cpus
from base.metrics import Metrics
from gateway.audit import AuditLog
from gateway.config import Config, StorageConfig
from gateway.journals import RecordingContext, SessionJournal
from gateway.policy import Policy
from gateway.retention import Retention
from gateway.rfb.messages import ServerInit
from gateway.screen_text import local_journals, screen_text_jobs, screen_text_options
from gateway.sessions import LiveSession
from recorder.clips import MAX_CLIP_SECONDS, Clip, ClipStore, check_clip_range, clip_path
from recorder.errors import RecordingError, RecordingKeyError, RecordingUnavailable
from recorder.index import RecordingIndex, RecordingRow
from recorder.jobs import JobKind, JobQueue
from recorder.journal import new_session_id, recording_path
from recorder.keyring import RecordingKeyring, install
from recorder.records import TERMINAL_PROTOCOL, TerminalSize
from recorder.recovery import finalize_orphans
from recorder.remote import JobRunner, RemoteRecordings
from recorder.rendering import found_masks, masked_again, render_video
from recorder.seal import load_or_create_key, read_seal
from recorder.spool import SpoolPruner
from recorder.storage import S3Storage, StorageError, clip_key
from recorder.text_index import TextKeys
from recorder.upload import SEGMENT_BYTES, SEGMENT_SECONDS, UPLOAD_DEADLINE, SegmentUploader
from recorder.worker import RenderPool
from recorder.writer import SessionRecorder, journal_writers, session_header

log = logging.getLogger(__name__)

#: Clip exports queued or rendering on one gateway at most: they share the workers with the sessions' videos.
MAX_CLIP_JOBS = 4
#: Clip exports one person may have under way on one gateway at most.
MAX_CLIP_JOBS_PER_USER = 2
CLIPS_ABANDONED = "the gateway stopped before the export finished; export the clip again"


class ClipRefused(Exception):
    """A clip export that a limit refuses; ``reason`` is the metric's label, the message says what to do."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class RecordingSettings:
    """What the service needs from ``storage``, read once at start-up."""

    root: Path  # the recordings directory, or with object storage the local spool
    key: bytes
    fsync_interval: float
    segment_bytes: int = SEGMENT_BYTES
    segment_interval: float = SEGMENT_SECONDS
    upload_deadline: float = UPLOAD_DEADLINE
    keyring: RecordingKeyring = RecordingKeyring((), None)  # encryption at rest; no current key: off
    writer_cpus: tuple[int, ...] = ()  # the journal writer threads' CPUs; empty: asyncio's default threads

    @classmethod
    def from_config(cls, config: Config) -> RecordingSettings:
        """The settings, creating the recording keys (0600) on first start; RecordingUnavailable if unusable.

        The recording keyring is installed for this process's readers (see :mod:`recorder.keyring`).
        """
        storage = config.storage
        keyring = load_keyring(config)
        return cls(storage.recordings, load_or_create_key(storage.recording_key_file), storage.fsync_interval,
                   storage.segment_bytes, storage.segment_interval, storage.upload_deadline, keyring,
                   storage.writer_cpus)


def load_keyring(config: Config, *, create: bool = True) -> RecordingKeyring:
    """``storage.recording_keys`` loaded (a first key created with ``create``) and installed for this process."""
    try:
        keyring = RecordingKeyring.load(config.storage.recording_keys, encrypt=config.storage.encrypt_recordings,
                                        create=create)
    except (OSError, RecordingKeyError) as exc:
        raise RecordingUnavailable(f"the recording keys cannot be used: {exc}") from exc
    install(keyring)
    return keyring


def render_pool(storage: StorageConfig, metrics: Metrics, keyring: RecordingKeyring) -> RenderPool:
    """This node's render workers: ``storage.render_workers``, else half the CPUs it may use (the rest proxy
    sessions, read screen text and index)."""
    workers = storage.render_workers or max(1, usable_cpus() // 2)
    return RenderPool(workers, metrics, max_fps=storage.export_fps, keyring=keyring)


def load_text_keys(config: Config) -> TextKeys:
    """The keys of stored screen text: tokens keyed from ``storage.recording_key_file``, sealed with the keyring.

    Missing keys are created (see :func:`load_keyring`); RecordingUnavailable if unusable.
    """
    return TextKeys.derive(load_or_create_key(config.storage.recording_key_file), load_keyring(config))


class RecordingService:
    """Opens journals for live sessions; indexes, renders and audits them once they end."""

    def __init__(
        self,
        settings: RecordingSettings,
        metrics: Metrics,
        index: RecordingIndex,
        audit: AuditLog,
        render_pool: RenderPool | None,
        *,
        max_clip_jobs: int = MAX_CLIP_JOBS,
        max_clip_jobs_per_user: int = MAX_CLIP_JOBS_PER_USER,
        max_clip_seconds: float = MAX_CLIP_SECONDS,
        remote: RemoteRecordings | None = None,
        jobs: JobQueue | None = None,
        ocr_jobs: JobQueue | None = None,
    ) -> None:
        if (remote is None) != (jobs is None):
            raise ValueError("object storage needs a job queue, and a job queue object storage")
        self.settings = settings
        self.remote = remote
        self._jobs = jobs
        self._ocr_jobs = ocr_jobs  # where each indexed recording's ``ocr`` job is queued; None: none
        self._uploaders: dict[str, SegmentUploader] = {}
        self._metrics = metrics
        self._index = index
        self._audit = audit
        self.render_pool = render_pool
        self._node = platform.node()
        self._background: set[asyncio.Task[None]] = set()
        self._open: dict[str, SessionRecorder] = {}
        self.clips = ClipStore(index.store)
        self._max_clip_jobs = max_clip_jobs
        self._max_clip_jobs_per_user = max_clip_jobs_per_user
        self._max_clip_seconds = max_clip_seconds
        self._clip_jobs: dict[str, tuple[str, asyncio.Task[None]]] = {}  # clip id → (owner, its export)
        self._writers = journal_writers(settings.writer_cpus) if settings.writer_cpus else None

    async def start(self, live: LiveSession, screen: ServerInit | TerminalSize, policy: Policy) -> SessionRecorder:
        """Create the journal of ``live``; RecordingUnavailable (audited) when it cannot be created."""
        started = time.time()
        recording_id = new_session_id()
        if isinstance(screen, ServerInit):
            width, height, pixel_format, name = screen.width, screen.height, screen.pixel_format, screen.name
        else:
            width, height, pixel_format, name = screen.cols, screen.rows, None, live.target.encode()
        header = session_header(
            session_id=recording_id, user=live.username, source=live.source, target=live.target,
            started_epoch=started, width=width, height=height, pixel_format=pixel_format, desktop_name=name,
            policy=policy.name, record_input=policy.record_input.value, clipboard=policy.clipboard.value,
            groups=live.groups, protocol=live.protocol, display_name=live.display_name,
        )
        path = recording_path(self.settings.root, recording_id)
        try:
            recorder = await SessionRecorder.open(path, header, key=self.settings.key, keyring=self.settings.keyring,
                                                  fsync_interval=self.settings.fsync_interval, metrics=self._metrics,
                                                  executor=self._writers)
        except RecordingUnavailable as exc:
            await self._audit_quietly("recording.start", live, recording_id, "failure", str(exc))
            raise
        if self.remote is not None:
            try:
                await self._start_upload(recorder)
            except RecordingUnavailable as exc:
                await recorder.close("recording storage unavailable")
                await self._audit_quietly("recording.start", live, recording_id, "failure", str(exc))
                raise
        self._open[recording_id] = recorder
        return recorder

    async def _start_upload(self, recorder: SessionRecorder) -> None:
        """Lease the recording's recover job and upload its first segment (a bucket that does not answer
        refuses the session within ``upload_deadline``), then upload in the background."""
        assert self.remote is not None and self._jobs is not None
        jobs, recording_id = self._jobs, recorder.session_id

        def overdue(reason: str) -> None:
            recorder.abort("upload_failed", StorageError(reason))

        uploader = SegmentUploader(
            self.remote.storage, recording_id, recorder.path, lambda: recorder.synced_size, self._metrics,
            segment_bytes=self.settings.segment_bytes, segment_seconds=self.settings.segment_interval,
            deadline=self.settings.upload_deadline, on_overdue=overdue)
        try:
            await jobs.add(JobKind.RECOVER, recording_id, leased=True)
            await uploader.upload_pending()
        except Exception as exc:
            raise RecordingUnavailable(f"recording storage is not available ({exc}); "
                                       "the session cannot start unrecorded") from exc
        uploader.start()
        self._uploaders[recording_id] = uploader

    async def watch_uploads(self) -> None:
        """Report the upload lag every second, and renew the live recordings' leases every third of a lease."""
        assert self._jobs is not None
        renewed = 0.0
        loop = asyncio.get_running_loop()
        while True:
            self._metrics.recording_upload_lag_seconds.set(self.upload_lag())
            if loop.time() - renewed >= self._jobs.lease / 3:
                try:
                    await self._jobs.renew_all(JobKind.RECOVER, list(self._uploaders))
                    renewed = loop.time()
                except Exception:  # past the lease, another node recovers them from their segments
                    log.exception("cannot renew the live recordings' leases")
            await asyncio.sleep(1.0)

    def upload_lag(self) -> float:
        """Seconds the longest-waiting live recording's bytes have waited for upload."""
        return max((uploader.lag for uploader in self._uploaders.values()), default=0.0)

    async def finish(self, live: LiveSession, journal: SessionJournal, reason: str) -> None:
        """Seal the journal, audit a failed one, then hand it to :meth:`sealed`."""
        recorder = self._open.pop(journal.recording_id)
        sealed = await recorder.close(reason)
        if sealed.failure is not None:
            await self._audit_quietly("recording.write", live, recording_id=sealed.session_id, outcome="failure",
                                      reason=str(sealed.failure), failure=sealed.failure.reason)
        uploader = self._uploaders.get(journal.recording_id)
        if uploader is None:
            self.sealed(sealed.path)
            return
        try:  # its lease is renewed until the upload is over: no other node recovers it meanwhile
            uploaded = await uploader.finish(sealed.size)
        finally:
            del self._uploaders[journal.recording_id]
        if uploaded:
            assert self._jobs is not None
            try:
                await self._jobs.add(JobKind.INDEX, sealed.session_id)
                await self._jobs.done(JobKind.RECOVER, sealed.session_id)
            except Exception:  # the recover job stays: once its lease runs out, a node indexes it
                log.exception("cannot queue a recording for indexing", extra={"ctx": {"recording": sealed.session_id}})

    def sealed(self, journal: Path) -> None:
        """A journal was finished (at a session's end, or by recovery): index it and render it, in the background."""
        self._spawn(self._index_and_render(journal))

    async def recover(self) -> int:
        """Finalize journals left open by a crash and hand each to :meth:`sealed`; returns how many.

        Clip exports this gateway had under way when it stopped are marked failed.
        """
        await self._abandon_clips()
        if self.remote is not None:
            return 0  # the jobs recover from the bucket, on any node
        finalized = await asyncio.to_thread(lambda: finalize_orphans(self.settings.root, self.settings.key,
                                                                     keyring=self.settings.keyring))
        for path in finalized:
            log.warning("recovered a recording after a crash", extra={"ctx": {"path": str(path)}})
            self.sealed(path)
        return len(finalized)

    def is_recording(self, recording_id: str) -> bool:
        """Whether this node is writing the recording now."""
        return recording_id in self._open

    async def render(self, recording_id: str, journal: Path) -> None:
        """Render one recording's video next to its journal, masked, and record the outcome in the index."""
        if self.render_pool is not None:
            await render_video(self._index, self.render_pool, recording_id, journal)

    async def export_clip(self, recording: RecordingRow, journal: Path, owner: str, start: object,
                          end: object) -> Clip:
        """Queue the export of ``start`` to ``end`` seconds of ``recording`` (its ``journal``) for ``owner``.

        Returns the clip as queued.

        ValueError says what is wrong with the range (see :func:`~recorder.clips.check_clip_range`);
        ClipRefused that a limit refuses it now (counted in ``review_refused_total``).
        """
        start, end = check_clip_range(start, end, recording.duration, self._max_clip_seconds)
        refusal = self._clip_refusal(owner)
        if refusal is not None:
            self._metrics.review_refused_total.labels(reason=refusal.reason).inc()
            raise refusal
        clip = await self.clips.create(recording.id, owner, start, end, self._node)
        task = asyncio.get_running_loop().create_task(self._export(clip, journal))
        self._clip_jobs[clip.id] = (owner, task)
        self._metrics.clip_exports_running.set(len(self._clip_jobs))
        task.add_done_callback(lambda _: self._clip_done(clip.id))
        return clip

    async def close(self) -> None:
        """Stop clip exports, wait for indexing and rendering under way, then stop the render workers."""
        for _, task in self._clip_jobs.values():
            task.cancel()
        if self._clip_jobs:
            await asyncio.gather(*(task for _, task in self._clip_jobs.values()), return_exceptions=True)
            await self._abandon_clips()
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        if self.render_pool is not None:
            await self.render_pool.close()
        if self._writers is not None and not self._open:  # a session still open keeps them for its close
            self._writers.shutdown(wait=False)

    def _clip_refusal(self, owner: str) -> ClipRefused | None:
        if self.render_pool is None:
            return ClipRefused("clips_unavailable", "this gateway renders no videos, so it cannot export clips")
        if len(self._clip_jobs) >= self._max_clip_jobs:
            return ClipRefused("clips_busy", f"the gateway is exporting {len(self._clip_jobs)} clips already; "
                                             "try again when one has finished")
        if sum(1 for who, _ in self._clip_jobs.values() if who == owner) >= self._max_clip_jobs_per_user:
            return ClipRefused("clips_per_user", f"you have {self._max_clip_jobs_per_user} clip exports under way; "
                                                 "wait for one to finish")
        return None

    async def _export(self, clip: Clip, journal: Path) -> None:
        """Render the clip and keep its row up to date; never raises (the row says what happened)."""
        assert self.render_pool is not None
        output = clip_path(self.settings.root, clip.id)
        context = {"clip": clip.id, "recording": clip.recording_id}
        try:
            await asyncio.to_thread(output.parent.mkdir, mode=0o700, parents=True, exist_ok=True)
            await self.clips.rendering(clip.id, 0.0)
            result = await self.render_pool.submit(journal, output, start=clip.start, end=clip.end,
                                                    progress=lambda fraction: self.clips.rendering(clip.id, fraction),
                                                    extra_masks=await found_masks(self._index, clip.recording_id))
            if result.error is not None:
                log.warning("a clip rendered only in part", extra={"ctx": {**context, "error": result.error}})
            stored: Path | str = output
            if self.remote is not None:  # any node serves it from the bucket
                stored = clip_key(clip.recording_id, clip.id)
                await self.remote.storage.put(stored, await asyncio.to_thread(output.read_bytes))
            await self.clips.ready(clip.id, stored)
            self._metrics.clip_exports_total.labels(outcome="ready").inc()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the reviewer sees the reason in the page
            log.error("exporting a clip failed", extra={"ctx": {**context, "error": exc}})
            self._metrics.clip_exports_total.labels(outcome="failed").inc()
            try:
                await self.clips.failed(clip.id, f"the export failed: {exc}")
            except Exception:
                log.exception("cannot record a failed clip export", extra={"ctx": context})

    def _clip_done(self, clip_id: str) -> None:
        self._clip_jobs.pop(clip_id, None)
        self._metrics.clip_exports_running.set(len(self._clip_jobs))

    async def _abandon_clips(self) -> None:
        """Mark this gateway's unfinished clip exports failed (it stopped, or crashed before)."""
        try:
            abandoned = await self.clips.abandon(self._node, CLIPS_ABANDONED)
        except Exception:
            log.exception("cannot mark unfinished clip exports failed")
            return
        if abandoned:
            log.warning("unfinished clip exports marked failed", extra={"ctx": {"clips": abandoned}})

    async def _index_and_render(self, journal: Path) -> None:
        try:
            sha256 = await asyncio.to_thread(_sealed_sha256, journal)
            summary = await self._index.add_journal(journal, sha256, self._node)
        except Exception:  # one bad journal must not stop the others
            log.exception("indexing a recording failed", extra={"ctx": {"path": str(journal)}})
            return
        if self._ocr_jobs is not None:
            try:
                await self._ocr_jobs.add(JobKind.OCR, summary.id)
            except Exception:  # searchable later by hand; the video matters more now
                log.exception("cannot queue a recording's screen text", extra={"ctx": {"recording": summary.id}})
        if summary.protocol != TERMINAL_PROTOCOL:  # a terminal plays as text: no video
            await self.render(summary.id, journal)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _audit_quietly(self, action: str, live: LiveSession, recording_id: str, outcome: str, reason: str,
                             **detail: object) -> None:
        try:
            await self._audit.record(action, user=live.username, source=live.source, target=live.target,
                                     outcome=outcome, reason=reason, session=live.id,
                                     recording=recording_id, **detail)
        except Exception:  # the log line below is the second witness
            log.exception("cannot store an audit event", extra={"ctx": {"action": action, "session": live.id}})


def _sealed_sha256(journal: Path) -> str | None:
    """The SHA-256 the journal was sealed with, or None when it has no readable seal."""
    try:
        return read_seal(journal).sha256
    except (OSError, RecordingError):
        return None


@asynccontextmanager
async def recording_service(context: RecordingContext) -> AsyncIterator[RecordingService]:
    """The gateway's recordings (``create_app``'s default factory): journals on disk, indexed and rendered.

    At start-up it finalizes the journals a crash left open; at shutdown it waits for indexing
    and rendering under way and stops the render workers. With ``storage.recordings: s3://…`` the
    journals are uploaded as they are written, and (unless ``storage.workers: false``) this node
    also claims recorder jobs; with ``storage.retention`` it deletes expired recordings.
    """
    metrics, storage = context.metrics, context.config.storage
    settings = RecordingSettings.from_config(context.config)
    async with recorder_storage(context.config, settings.key) as remote, contextlib.AsyncExitStack() as tasks:
        store = context.index.store
        jobs = JobQueue(store, context.config.audit.node, lease=storage.job_lease) if remote is not None else None
        options = await screen_text_options(context.config, settings.key)
        ocr_jobs = JobQueue(store, context.config.audit.node, lease=storage.job_lease)
        pool = render_pool(storage, metrics, settings.keyring)
        service = RecordingService(settings, metrics, context.index, context.audit, pool,
                                   remote=remote, jobs=jobs, ocr_jobs=ocr_jobs)
        try:
            if storage.workers:
                locate = remote.local_journal if remote is not None else local_journals(context.index)
                again = masked_again(context.index, pool, locate,
                                     remote.storage if remote is not None else None)
                await tasks.enter_async_context(screen_text_jobs(context.config, context.index.texts, metrics, options,
                                                                 locate, settings.keyring, found_on_screen=again))
            await service.recover()
            if remote is not None and jobs is not None:
                tasks.enter_context(_running(service.watch_uploads()))
                if storage.workers:
                    runner = JobRunner(jobs, remote, context.index, service.render_pool, metrics, ocr=True)
                    tasks.enter_context(_running(runner.run()))
            if remote is not None:
                pruner = SpoolPruner(remote.spool, remote.storage, storage.spool_keep, in_use=service.is_recording)
                tasks.enter_context(_running(pruner.run_forever()))
            if storage.retention is not None and storage.workers:
                retention = Retention(context.index, context.audit, metrics, keep=storage.retention,
                                      root=storage.recordings, remote=remote, node=context.config.audit.node)
                tasks.enter_context(_running(retention.run_forever()))
            yield service
        finally:
            await tasks.aclose()
            await service.close()


@asynccontextmanager
async def recorder_storage(config: Config, key: bytes) -> AsyncIterator[RemoteRecordings | None]:
    """The bucket of ``storage.recordings: s3://…`` as this node sees it; None for a directory."""
    storage = config.storage
    if storage.s3 is None:
        yield None
        return
    try:
        bucket = await S3Storage.open(storage.s3)
    except Exception as exc:
        raise RecordingUnavailable(f"cannot use the bucket {storage.s3.bucket}: {exc}") from exc
    try:
        yield RemoteRecordings(bucket, storage.recordings, key, storage.upload_deadline)
    finally:
        await bucket.close()


@contextlib.contextmanager
def _running(work: Coroutine[Any, Any, None]) -> Iterator[None]:
    """Run ``work`` as a task while the block runs; cancel it after."""
    task = asyncio.get_running_loop().create_task(work)
    try:
        yield
    finally:
        task.cancel()

