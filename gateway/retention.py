"""Retention and legal hold: recordings older than ``storage.retention`` are deleted, unless held.

Deleting a recording removes its journal (or segments), seal, video, poster, clips and index
rows, and leaves a tombstone (``recording_tombstones``: id, user, target, started, when deleted,
why, and the SHA-256 its seal vouched for) and an audit event ``recording.delete``. An
administrator puts a recording on hold (``recording.hold``) and releases it
(``recording.release``); a held recording is never deleted. The clock is injected.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import delete, exists, select

from base.db import Store
from base.metrics import Metrics
from gateway.audit import AuditLog
from recorder.index import RecordingIndex, RecordingRow
from recorder.journal import recording_path
from recorder.masking import unmasked_video_path
from recorder.remote import RemoteRecordings
from recorder.tables import (
    recording_bookmarks,
    recording_clips,
    recording_events,
    recording_holds,
    recording_sources,
    recording_tombstones,
    recordings,
)

log = logging.getLogger(__name__)

#: Seconds between retention runs in ``serve`` and ``worker``.
RETENTION_INTERVAL = 3600.0
#: Recordings deleted in one run at most (the next run goes on).
RETENTION_BATCH = 500


@dataclass(frozen=True, slots=True)
class Tombstone:
    id: str
    user: str
    target: str
    started: datetime
    deleted: datetime
    reason: str
    sha256: str | None


async def tombstone(store: Store, recording_id: str) -> Tombstone | None:
    """What retention left of ``recording_id``, if it deleted it."""
    async with store.read() as connection:
        row = (await connection.execute(select(recording_tombstones)
                                        .where(recording_tombstones.c.id == recording_id))).mappings().first()
    return None if row is None else Tombstone(**dict(row))


def _span(seconds: float) -> str:
    """``storage.retention`` in words: "180 days", "12 hours", "90 seconds"."""
    for unit, size in (("days", 86400), ("hours", 3600), ("minutes", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)} {unit}"
    return f"{seconds:g} seconds"


class HoldError(Exception):
    """A hold or release that cannot be done; the message says why."""


async def hold(store: Store, audit: AuditLog, recording_id: str, *, by: str, reason: str,
               source: str = "cli") -> None:
    """Put a recording on legal hold (audited); HoldError if it is not indexed or is held already."""
    if not reason.strip():
        raise HoldError("give a reason for the hold (e.g. the case or request number)")
    async with store.transaction() as connection:
        if await connection.scalar(select(recordings.c.id).where(recordings.c.id == recording_id)) is None:
            raise HoldError(f"no recording {recording_id} is indexed (deleted, or not finished yet)")
        added = await connection.execute(store.insert_if_absent(recording_holds, {
            "recording_id": recording_id, "by": by, "reason": reason, "since": datetime.now(UTC)}))
        if added.rowcount != 1:
            raise HoldError(f"{recording_id} is on hold already")
    await audit.record("recording.hold", user=by, source=source, target=recording_id, outcome="ok", reason=reason)


async def release(store: Store, audit: AuditLog, recording_id: str, *, by: str, source: str = "cli") -> None:
    """Release a recording's hold (audited); HoldError if it is not held."""
    async with store.transaction() as connection:
        removed = await connection.execute(delete(recording_holds)
                                           .where(recording_holds.c.recording_id == recording_id))
    if removed.rowcount != 1:
        raise HoldError(f"{recording_id} is not on hold")
    await audit.record("recording.release", user=by, source=source, target=recording_id, outcome="ok")


class Retention:
    """Deletes recordings started more than ``keep`` seconds before ``clock()``, except held ones."""

    def __init__(self, index: RecordingIndex, audit: AuditLog, metrics: Metrics, *, keep: float, root: Path,
                 remote: RemoteRecordings | None, node: str, clock: Callable[[], float] = time.time) -> None:
        self._index = index
        self._store = index.store
        self._audit = audit
        self._metrics = metrics
        self._keep = keep
        self._root = root
        self._remote = remote
        self._node = node
        self._clock = clock

    @property
    def reason(self) -> str:
        return f"retention: older than {_span(self._keep)}"

    async def expired(self) -> list[RecordingRow]:
        """The recordings past retention and not held, oldest first."""
        cutoff = datetime.fromtimestamp(self._clock() - self._keep, UTC)
        query = (select(recordings.c.id).where(
            recordings.c.started < cutoff,
            ~exists().where(recording_holds.c.recording_id == recordings.c.id))
            .order_by(recordings.c.started).limit(RETENTION_BATCH))
        async with self._store.read() as connection:
            ids = [row.id for row in (await connection.execute(query)).all()]
        rows = [await self._index.get(recording_id) for recording_id in ids]
        return [row for row in rows if row is not None]

    async def run(self) -> list[RecordingRow]:
        """Delete every expired recording; returns those deleted."""
        deleted = []
        for row in await self.expired():
            if await self.delete(row):
                deleted.append(row)
        return deleted

    async def run_forever(self, interval: float = RETENTION_INTERVAL) -> None:
        while True:
            try:
                await self.run()
            except Exception:
                log.exception("a retention run failed; the next one tries again")
            await asyncio.sleep(interval)

    async def delete(self, row: RecordingRow) -> bool:
        """Delete one recording (False: it was put on hold meanwhile, or is gone already)."""
        deleted = datetime.fromtimestamp(self._clock(), UTC)
        async with self._store.transaction() as connection:
            held = await connection.scalar(select(recording_holds.c.recording_id)
                                           .where(recording_holds.c.recording_id == row.id))
            if held is not None:
                return False
            clips = [found.path for found in (await connection.execute(
                select(recording_clips.c.path).where(recording_clips.c.recording_id == row.id))).all()]
            for table, column in ((recording_events, recording_events.c.recording_id),
                                  (recording_sources, recording_sources.c.recording_id),
                                  (recording_bookmarks, recording_bookmarks.c.recording_id),
                                  (recording_clips, recording_clips.c.recording_id)):
                await connection.execute(delete(table).where(column == row.id))
            gone = await connection.execute(delete(recordings).where(recordings.c.id == row.id))
            if gone.rowcount != 1:
                return False
            await connection.execute(self._store.insert_if_absent(recording_tombstones, {
                "id": row.id, "user": row.user, "target": row.target, "started": row.started,
                "deleted": deleted, "reason": self.reason, "sha256": row.sha256}))
        await self._delete_files(row, [Path(path) for path in clips if path])
        self._metrics.recordings_deleted_total.inc()
        detail: dict[str, Any] = {"recording": row.id, "owner": row.user, "started": row.started.isoformat(),
                                  "sha256": row.sha256}
        try:
            await self._audit.record("recording.delete", user=None, source=self._node, target=row.target,
                                     outcome="ok", reason=self.reason, **detail)
        except Exception:  # the tombstone is the second witness
            log.exception("cannot store the audit event of a deleted recording", extra={"ctx": detail})
        log.info("recording deleted by retention", extra={"ctx": detail})
        return True

    async def _delete_files(self, row: RecordingRow, clips: list[Path]) -> None:
        journal = recording_path(self._root, row.id) if self._remote is not None else Path(row.path)
        local = [journal, journal.with_name(journal.name + ".seal"), journal.with_suffix(".mp4"),
                 journal.with_suffix(".jpg"), unmasked_video_path(journal), *clips]
        if row.video_path and self._remote is None:
            local += [Path(row.video_path), Path(row.video_path).with_suffix(".jpg")]
        for path in local:
            try:
                await asyncio.to_thread(path.unlink, missing_ok=True)
            except OSError as exc:
                log.error("cannot delete a file of a deleted recording; delete it by hand",
                          extra={"ctx": {"recording": row.id, "path": str(path), "error": exc}})
        if self._remote is not None:
            storage = self._remote.storage
            for key in await storage.list(f"{row.id}/"):
                await storage.delete(key)
