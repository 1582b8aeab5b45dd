"""Keeping a node's spool from filling its disk: local copies of recordings that are safe in the bucket go.

With object storage, a node's spool holds the journals it records (written and fsynced there
first, then uploaded) and the copies it downloaded to play, index, render or read a recording.
Once a recording's seal is in the bucket, the bucket holds all of it and the local files are only
a cache: :class:`SpoolPruner` deletes the journal, its seal and its rendered files once they have
not been written for ``keep`` seconds, unless the recording is still being written on this node.
A recording whose upload failed keeps its files (its seal is not in the bucket), so nothing that
exists only here is ever deleted. A copy that is needed again is downloaded again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path

from recorder.journal import JOURNAL_SUFFIX, is_session_id
from recorder.storage import SEAL, ObjectStorage, StorageError

log = logging.getLogger(__name__)

#: Seconds between two looks through the spool.
PRUNE_INTERVAL = 600.0


class SpoolPruner:
    """Deletes local copies in ``spool`` that are older than ``keep`` seconds and sealed in ``storage``."""

    def __init__(self, spool: Path, storage: ObjectStorage, keep: float, *, in_use: Callable[[str], bool],
                 clock: Callable[[], float] = time.time) -> None:
        if keep < 0:
            raise ValueError(f"keep must not be negative, not {keep}")
        self._spool = spool
        self._storage = storage
        self._keep = keep
        self._in_use = in_use  # True while this node still writes the recording
        self._clock = clock

    async def prune(self) -> int:
        """Look through the spool once; the number of recordings whose local files were deleted."""
        pruned = 0
        for journal, modified in await asyncio.to_thread(self._journals):
            recording_id = journal.name.removesuffix(JOURNAL_SUFFIX)
            if self._clock() - modified < self._keep or self._in_use(recording_id):
                continue
            try:
                sealed_in_bucket = await self._storage.size(f"{recording_id}/{SEAL}") is not None
            except StorageError as exc:
                log.warning("the bucket did not answer; the spool is pruned later",
                            extra={"ctx": {"error": exc}})
                return pruned
            if not sealed_in_bucket:
                continue
            removed = await asyncio.to_thread(_remove_local_files, journal.parent, recording_id)
            log.info("local copy of a recording removed from the spool (it is in the bucket)",
                     extra={"ctx": {"recording": recording_id, "files": removed}})
            pruned += 1
        return pruned

    async def run_forever(self, interval: float = PRUNE_INTERVAL) -> None:
        while True:
            try:
                await self.prune()
            except Exception:
                log.exception("pruning the spool failed; the next look tries again")
            await asyncio.sleep(interval)

    def _journals(self) -> list[tuple[Path, float]]:
        """The journals in the spool with the last time any of their files was written."""
        found = []
        for journal in self._spool.glob(f"*/*/*/*{JOURNAL_SUFFIX}"):
            if not is_session_id(journal.name.removesuffix(JOURNAL_SUFFIX)):
                continue
            try:
                modified = max(path.stat().st_mtime for path in journal.parent.glob(journal.name.removesuffix(
                    JOURNAL_SUFFIX) + ".*"))
            except (OSError, ValueError):
                continue  # gone meanwhile
            found.append((journal, modified))
        return found


def _remove_local_files(directory: Path, recording_id: str) -> int:
    """Delete the recording's files in ``directory`` (journal, seal, video, poster, unmasked video)."""
    removed = 0
    for path in directory.glob(f"{recording_id}.*"):
        try:
            path.unlink()
            removed += 1
        except FileNotFoundError:
            pass
    return removed
