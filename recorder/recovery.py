"""Crash recovery: finish the journals a gateway left open when it died.

A journal without a seal whose ``flock`` can be taken has no writer any more. Its
torn tail (the part after the last complete record) is cut, an END record with the
reason "gateway crashed" is appended, dated at the last record, and it is sealed —
so it shows up in search and renders like any other recording. A journal another
process still holds is a live session and is left alone.

An encrypted journal (format 2) is cut at its last batch that opens, and END is sealed
as the next batch with the journal's own data key — recovery needs the recording key
the journal names (a missing key is logged, and the journal left as it is).
"""

from __future__ import annotations

import logging
from pathlib import Path

from recorder.errors import RecordingError
from recorder.journal import (
    JOURNAL_SUFFIX,
    MAX_RECORD,
    JournalFile,
    JournalReader,
    RecordKind,
    encode_batched_record,
    encode_json,
    encode_record,
)
from recorder.keyring import RecordingKeyring
from recorder.records import SessionEnd, journal_started_epoch
from recorder.seal import seal_journal, seal_path

log = logging.getLogger(__name__)

CRASHED_REASON = "gateway crashed"


def finalize_orphans(root: Path, key: bytes, *, max_record: int = MAX_RECORD,
                     keyring: RecordingKeyring | None = None) -> list[Path]:
    """Finalize and seal every orphaned journal under ``root``; returns the journals changed.

    Sealed journals are skipped without being read. A journal that cannot be finalized
    (no readable HEADER, I/O error) is logged and left as it is: never deleted.
    """
    finalized: list[Path] = []
    for path in sorted(root.rglob(f"*{JOURNAL_SUFFIX}")):
        if not path.is_file() or seal_path(path).exists():
            continue
        try:
            if finalize_journal(path, key, max_record, keyring=keyring):
                finalized.append(path)
        except (OSError, RecordingError) as exc:
            log.warning("cannot finalize an orphaned recording", extra={"ctx": {"path": str(path), "error": exc}})
    return finalized


def finalize_journal(path: Path, key: bytes, max_record: int = MAX_RECORD, *,
                     keyring: RecordingKeyring | None = None) -> bool:
    """Finalize and seal one journal without a writer (False: a live process still holds it).

    ``keyring``: where an encrypted journal's key is found (default: the installed keys).
    """
    journal = JournalFile.reopen(path)
    if journal is None:
        return False  # a live gateway process is still writing it
    with journal:
        reader = JournalReader(path, max_record=max_record, keyring=keyring)
        for _ in reader:
            pass
        if reader.end is None:
            started = journal_started_epoch(reader.header)
            if started is not None:
                ended_epoch = started + reader.last_offset_us / 1e6
            else:  # a HEADER not written by the gateway: the last write is the best guess
                ended_epoch = path.stat().st_mtime
            journal.truncate(reader.valid_size())
            end = SessionEnd(ended_epoch, CRASHED_REASON, crashed=True, torn_at=reader.torn_at)
            payload = encode_json(end.to_json())
            if reader.codec is None:
                journal.write(encode_record(RecordKind.END, reader.last_offset_us, payload))
            else:
                journal.write_batch(reader.codec, reader.batches,
                                    encode_batched_record(RecordKind.END, reader.last_offset_us, payload))
            log.warning(
                "finalized a recording left open by a crash",
                extra={"ctx": {"path": str(path), "torn_at": reader.torn_at}},
            )
        elif reader.torn_at is not None:
            journal.truncate(reader.torn_at)  # bytes after END: not part of the recording
        journal.fsync()
        seal_journal(path, key, keyring)
    return True
