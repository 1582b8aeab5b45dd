"""Whether this node reads recordings' screen text, and the job loop that does it (``ocr:`` and ``pii:``).

``ocr.enabled: auto`` (the default) reads screen text when Tesseract is installed with every language of
``ocr.languages``, and otherwise says at start-up, once, that it will not; ``on`` refuses to start without
them; ``off`` reads none (typed text is still searched for personal data). The digests of personal data
are keyed with a key derived from the recording key, which every node shares.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from base.metrics import Metrics
from gateway.config import Config
from recorder.errors import RecordingUnavailable
from recorder.index import RecordingIndex
from recorder.jobs import JobQueue
from recorder.keyring import RecordingKeyring
from recorder.ocr import tesseract_languages
from recorder.pii import digest_key
from recorder.screen_index import ScreenTextOptions
from recorder.screen_jobs import JournalLocator, RecordingCallback, ScreenTextJobs, ScreenTextPool
from recorder.screen_search import ScreenTexts

log = logging.getLogger(__name__)


async def screen_text_options(config: Config, recording_key: bytes) -> ScreenTextOptions:
    """How this node reads recordings, after looking for Tesseract; RecordingUnavailable if ``on`` cannot be."""
    ocr, pii = config.ocr, config.pii
    wanted = set(ocr.languages.split("+"))
    reading = False
    if ocr.enabled != "off":
        installed = await asyncio.to_thread(tesseract_languages)
        missing = sorted(wanted - installed) if installed is not None else None
        reading = missing == []
        if not reading:
            problem = ("tesseract is not installed" if missing is None
                       else f"tesseract has no {'+'.join(missing)} language data")
            remedy = "install tesseract-ocr, tesseract-ocr-jpn and tesseract-ocr-eng"
            if ocr.enabled == "on":
                raise RecordingUnavailable(f"ocr.enabled is on but {problem}; {remedy}, or set ocr.enabled: off")
            log.warning("recordings' screen text will not be searchable (set ocr.enabled: off to silence this)",
                        extra={"ctx": {"reason": problem, "remedy": remedy}})
    return ScreenTextOptions(digest_key=digest_key(recording_key), languages=ocr.languages, interval=ocr.interval,
                             kinds=pii.kinds, patterns=pii.patterns, ocr=reading)


def local_journals(index: RecordingIndex) -> JournalLocator:
    """Where a recording's journal is with a local recordings directory: the path its index row names."""

    async def locate(recording_id: str) -> Path | None:
        row = await index.get(recording_id)
        if row is None:
            return None
        path = Path(row.path)
        return path if await asyncio.to_thread(path.is_file) else None

    return locate


@asynccontextmanager
async def screen_text_jobs(config: Config, texts: ScreenTexts, metrics: Metrics, options: ScreenTextOptions,
                           locate: JournalLocator, keyring: RecordingKeyring, *,
                           found_on_screen: RecordingCallback | None = None) -> AsyncIterator[JobQueue]:
    """Claim and do ``ocr`` jobs while the block runs, in ``ocr.workers`` processes; yields the queue to add to.

    The processes read encrypted journals with ``keyring``.

    ``found_on_screen`` is awaited with a recording's id when its screen showed personal data (its video
    must be rendered again, masked). Screen text an earlier version stored in clear is sealed and
    indexed meanwhile (:meth:`~recorder.screen_search.ScreenTexts.seal_clear_rows`).
    """
    queue = JobQueue(texts.store, config.audit.node, lease=config.storage.job_lease)
    pool = ScreenTextPool(config.ocr.workers, keyring)
    jobs = ScreenTextJobs(queue, texts, pool, metrics, options, locate,
                          concurrency=config.ocr.workers, found_on_screen=found_on_screen)
    loop = asyncio.get_running_loop()
    tasks = [loop.create_task(jobs.run()), loop.create_task(_seal_clear_rows(texts))]
    try:
        yield queue
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await pool.close()


async def _seal_clear_rows(texts: ScreenTexts) -> None:
    """Seal and index screen text stored in clear by an earlier version, once at start-up."""
    try:
        await texts.seal_clear_rows()
    except Exception:  # the job loop goes on; the next start tries again
        log.exception("cannot seal the screen text stored in clear; it stays out of search until the next start tries again")
