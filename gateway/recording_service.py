"""The gateway's recordings: where each session's journal goes, and what happens when it ends.

:class:`RecordingService` is built once per gateway from ``storage`` (directory, fsync
interval, recording key) and the shared services. A desktop session asks it for a
:class:`~gateway.recording.SessionRecorder` before the browser's handshake completes
(fail-closed: no journal, no session), and hands the sealed journal back when the
session ends; the service then indexes it for search and renders its video in a
worker process, in the background. At start-up :meth:`recover` finalizes the journals
a crashed gateway left open and indexes them like any other.
"""

from __future__ import annotations

import asyncio
import logging
import platform
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from base.metrics import Metrics
from gateway.audit import AuditLog
from gateway.config import Config
from gateway.journals import SessionJournal
from gateway.policy import Policy
from gateway.recording import SessionRecorder, session_header
from gateway.rfb.messages import ServerInit
from gateway.sessions import LiveSession
from recorder.errors import RecordingError, RecordingUnavailable
from recorder.index import RecordingIndex, VideoState
from recorder.journal import new_session_id, recording_path
from recorder.recovery import finalize_orphans
from recorder.seal import load_or_create_key, read_seal
from recorder.worker import RenderPool

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RecordingSettings:
    """What the service needs from ``storage``, read once at start-up."""

    root: Path
    key: bytes
    fsync_interval: float

    @classmethod
    def from_config(cls, config: Config) -> RecordingSettings:
        """The settings, creating the recording key (0600) on first start; RecordingUnavailable if unusable."""
        storage = config.storage
        return cls(storage.recordings, load_or_create_key(storage.recording_key_file), storage.fsync_interval)


class RecordingService:
    """Opens journals for live sessions; indexes, renders and audits them once they end."""

    def __init__(
        self,
        settings: RecordingSettings,
        metrics: Metrics,
        index: RecordingIndex,
        audit: AuditLog,
        render_pool: RenderPool | None,
    ) -> None:
        self.settings = settings
        self._metrics = metrics
        self._index = index
        self._audit = audit
        self._render_pool = render_pool
        self._node = platform.node()
        self._background: set[asyncio.Task[None]] = set()
        self._open: dict[str, SessionRecorder] = {}

    async def start(self, live: LiveSession, server_init: ServerInit, policy: Policy) -> SessionRecorder:
        """Create the journal of ``live``; RecordingUnavailable (audited) when it cannot be created."""
        started = time.time()
        recording_id = new_session_id()
        header = session_header(
            session_id=recording_id, user=live.username, source=live.source, target=live.target,
            started_epoch=started, width=server_init.width, height=server_init.height,
            pixel_format=server_init.pixel_format, desktop_name=server_init.name, policy=policy.name,
            record_input=policy.record_input.value, clipboard=policy.clipboard.value,
        )
        path = recording_path(self.settings.root, recording_id)
        try:
            recorder = await SessionRecorder.open(path, header, key=self.settings.key,
                                                  fsync_interval=self.settings.fsync_interval, metrics=self._metrics)
        except RecordingUnavailable as exc:
            await self._audit_quietly("recording.start", live, recording_id, "failure", str(exc))
            raise
        self._open[recording_id] = recorder
        return recorder

    async def finish(self, live: LiveSession, journal: SessionJournal, reason: str) -> None:
        """Seal the journal, audit a failed one, then index and render it in the background."""
        recorder = self._open.pop(journal.recording_id)
        sealed = await recorder.close(reason)
        if sealed.failure is not None:
            await self._audit_quietly("recording.write", live, recording_id=sealed.session_id, outcome="failure",
                                      reason=str(sealed.failure), failure=sealed.failure.reason)
        self._spawn(self._index_and_render(sealed.path))

    async def recover(self) -> int:
        """Finalize journals left open by a crash, index them, and render them; returns how many."""
        finalized = await asyncio.to_thread(finalize_orphans, self.settings.root, self.settings.key)
        for path in finalized:
            log.warning("recovered a recording after a crash", extra={"ctx": {"path": str(path)}})
            self._spawn(self._index_and_render(path))
        return len(finalized)

    async def render(self, recording_id: str, journal: Path) -> None:
        """Render one recording's video next to its journal and record the outcome in the index."""
        if self._render_pool is None:
            return
        output = journal.with_suffix(".mp4")
        await self._index.set_video(recording_id, VideoState.PENDING)
        try:
            result = await self._render_pool.submit(journal, output)
        except (OSError, RecordingError) as exc:
            log.error("rendering a recording failed", extra={"ctx": {"recording": recording_id, "error": exc}})
            await self._index.set_video(recording_id, VideoState.FAILED)
            return
        if result.error is not None:
            log.warning("a recording rendered only in part", extra={"ctx": {"recording": recording_id,
                                                                           "error": result.error}})
        await self._index.set_video(recording_id, VideoState.READY, output)
        log.info("recording rendered", extra={"ctx": {"recording": recording_id, "frames": result.frames,
                                                      "realtime_factor": round(result.realtime_factor, 1)}})

    async def close(self) -> None:
        """Wait for indexing and rendering under way, then stop the render workers."""
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        if self._render_pool is not None:
            await self._render_pool.close()

    async def _index_and_render(self, journal: Path) -> None:
        try:
            sha256 = await asyncio.to_thread(_sealed_sha256, journal)
            summary = await self._index.add_journal(journal, sha256, self._node)
        except Exception:  # one bad journal must not stop the others
            log.exception("indexing a recording failed", extra={"ctx": {"path": str(journal)}})
            return
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
