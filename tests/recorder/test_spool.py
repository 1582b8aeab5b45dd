"""The spool keeps what exists only here and what is recent or being written; sealed, older copies go."""

from __future__ import annotations

import os
from pathlib import Path

from recorder.journal import recording_path
from recorder.spool import SpoolPruner
from recorder.storage import SEAL, LocalStorage, StorageError

NOW = 1_765_000_000.0
HOUR = 3600.0
SAFE, RECENT, UNSEALED, LIVE = ("20261201T080000Z-0000000a", "20261201T090000Z-0000000b",
                                "20261201T100000Z-0000000c", "20261201T110000Z-0000000d")


def spool_copy(spool: Path, recording_id: str, age: float) -> list[Path]:
    """A journal with its seal, video and poster in the spool, last written ``age`` seconds before NOW."""
    journal = recording_path(spool, recording_id)
    journal.parent.mkdir(parents=True, exist_ok=True)
    files = [journal, journal.with_name(journal.name + ".seal"), journal.with_suffix(".mp4"),
             journal.with_suffix(".jpg")]
    for path in files:
        path.write_bytes(b"x")
        os.utime(path, (NOW - age, NOW - age))
    return files


async def test_only_old_copies_sealed_in_the_bucket_and_not_being_written_are_deleted(tmp_path: Path) -> None:
    spool, bucket = tmp_path / "spool", LocalStorage(tmp_path / "bucket")
    copies = {recording_id: spool_copy(spool, recording_id, age) for recording_id, age in
              ((SAFE, 2 * HOUR), (RECENT, 10.0), (UNSEALED, 2 * HOUR), (LIVE, 2 * HOUR))}
    for recording_id in (SAFE, RECENT, LIVE):
        await bucket.put(f"{recording_id}/{SEAL}", b"seal")
    pruner = SpoolPruner(spool, bucket, HOUR, in_use=lambda recording_id: recording_id == LIVE, clock=lambda: NOW)

    assert await pruner.prune() == 1
    assert not any(path.exists() for path in copies[SAFE])
    for kept in (RECENT, UNSEALED, LIVE):  # written lately; only here (its upload failed); still being written
        assert all(path.exists() for path in copies[kept]), kept
    assert await pruner.prune() == 0


async def test_a_bucket_that_does_not_answer_deletes_nothing(tmp_path: Path) -> None:
    class DownBucket(LocalStorage):
        async def size(self, key: str) -> int | None:
            raise StorageError("connection refused")

    spool = tmp_path / "spool"
    files = spool_copy(spool, SAFE, 2 * HOUR)
    pruner = SpoolPruner(spool, DownBucket(tmp_path / "bucket"), HOUR, in_use=lambda _: False, clock=lambda: NOW)
    assert await pruner.prune() == 0
    assert all(path.exists() for path in files)
