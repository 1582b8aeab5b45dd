"""A recording's video and poster: rendered with every mask that applies, and the outcome in the index.

The masks are the set journaled with the session (configured regions, read by the render worker) and
the personal data found on its screen (:class:`~recorder.screen_search.ScreenTexts`, once its screen
text was read). Rendering is therefore done again when the screen text finds something on screen:
the first video, made before that, did not hide it. One function serves a local recordings directory
(the video beside the journal) and object storage (uploaded beside the journal's segments).
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError

from recorder.errors import RecordingError
from recorder.index import RecordingIndex, VideoState
from recorder.masking import MaskRegion, TimedMask
from recorder.screen_jobs import JournalLocator, RecordingCallback
from recorder.storage import POSTER, VIDEO, ObjectStorage, StorageError
from recorder.worker import RenderPool

log = logging.getLogger(__name__)


async def found_masks(index: RecordingIndex, recording_id: str) -> tuple[TimedMask, ...]:
    """The personal data found on the recording's screen, as masks over the time each was visible."""
    findings = await index.texts.findings(recording_id)
    return tuple(TimedMask(MaskRegion(*finding.region, label=finding.kind), finding.start, finding.end)
                 for finding in findings if finding.region is not None)


async def render_video(index: RecordingIndex, pool: RenderPool, recording_id: str, journal: Path, *,
                       bucket: ObjectStorage | None = None) -> bool:
    """Render ``journal``'s video and poster beside it (and upload both to ``bucket``); False if it failed.

    The index says ``pending`` while it renders, then ``ready`` with the file (or the bucket key),
    or ``failed``. Masks that cannot be read fail the render: a video never shows what it must hide.
    """
    video, poster = journal.with_suffix(".mp4"), journal.with_suffix(".jpg")
    context = {"recording": recording_id}
    await index.set_video(recording_id, VideoState.PENDING)
    try:
        masks = await found_masks(index, recording_id)
        result = await pool.submit(journal, video, poster=poster, extra_masks=masks)
        if bucket is not None:
            await bucket.put(f"{recording_id}/{VIDEO}", await asyncio.to_thread(video.read_bytes))
            if await asyncio.to_thread(poster.is_file):
                await bucket.put(f"{recording_id}/{POSTER}", await asyncio.to_thread(poster.read_bytes))
    except (OSError, RecordingError, StorageError, SQLAlchemyError) as exc:
        log.error("rendering a recording failed", extra={"ctx": {**context, "error": exc}})
        await index.set_video(recording_id, VideoState.FAILED)
        return False
    if result.error is not None:
        log.warning("a recording rendered only in part", extra={"ctx": {**context, "error": result.error}})
    await index.set_video(recording_id, VideoState.READY, f"{recording_id}/{VIDEO}" if bucket is not None else video)
    log.info("recording rendered", extra={"ctx": {**context, "frames": result.frames, "masks_found": len(masks),
                                                  "realtime_factor": round(result.realtime_factor, 1)}})
    return True


def masked_again(index: RecordingIndex, pool: RenderPool, locate: JournalLocator,
                 bucket: ObjectStorage | None) -> RecordingCallback:
    """What renders a recording's video again, with its journal found by ``locate`` (into the bucket if any)."""

    async def render_again(recording_id: str) -> None:
        journal = await locate(recording_id)
        if journal is None:
            log.warning("no journal to render again (deleted?)", extra={"ctx": {"recording": recording_id}})
            return
        await render_video(index, pool, recording_id, journal, bucket=bucket)

    return render_again
