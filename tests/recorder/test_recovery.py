"""Crash recovery in one process: torn journals are cut, ended "gateway crashed" and sealed; others are left alone."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from recorder.journal import (
    JournalFile,
    JournalReader,
    JournalRecord,
    RecordKind,
    encode_json,
    encode_record,
    iso_utc,
    recording_path,
)
from recorder.recovery import finalize_orphans
from recorder.seal import seal_journal, seal_path, verify_journal

KEY = bytes(range(32))
STARTED = 1795593600.25
IDS = ["20261125T080000Z-1a2b3c4d", "20261125T090000Z-00000001", "20261126T000000Z-00000002"]
BODY = [
    (RecordKind.EVENT, 0, encode_json({"type": "session_start"})),
    (RecordKind.SERVER_DATA, 1_000, bytes(range(30))),
    (RecordKind.CLIENT_DATA, 250_000, b"\x05\x01\x00\x10\x00\x20"),
    (RecordKind.SERVER_DATA, 1_500_000, b"\xff" * 9),
]


def unfinished_journal(root: Path, session_id: str = IDS[0], header_extra: dict[str, object] | None = None) -> Path:
    path = recording_path(root, session_id)
    header = {"session_id": session_id, "started_epoch": STARTED, **(header_extra or {})}
    with JournalFile.create(path, header) as journal:
        journal.write(b"".join(encode_record(*record) for record in BODY))
    return path


def read_all(path: Path) -> tuple[JournalReader, list[JournalRecord]]:
    reader = JournalReader(path)
    return reader, list(reader)


def test_a_journal_cut_anywhere_is_finalized_at_its_last_complete_record(tmp_path: Path) -> None:
    template = unfinished_journal(tmp_path / "template")
    full = template.read_bytes()
    reader, records = read_all(template)
    header_end = records[0].position
    root = tmp_path / "recordings"
    path = recording_path(root, IDS[0])
    path.parent.mkdir(parents=True)
    for cut in range(header_end, len(full) + 1):
        path.write_bytes(full[:cut])
        seal_path(path).unlink(missing_ok=True)
        assert finalize_orphans(root, KEY) == [path]
        finished, kept = read_all(path)
        complete = [r for r in records if r.end <= cut]
        last_end = complete[-1].end if complete else header_end
        assert [(r.kind, r.payload) for r in kept[:-1]] == [(r.kind, r.payload) for r in complete], cut
        end = kept[-1]
        assert end.kind == RecordKind.END and end.position == last_end
        last_offset = complete[-1].offset_us if complete else 0
        assert end.offset_us == last_offset
        assert finished.end == {
            "ended": iso_utc(STARTED + last_offset / 1e6),
            "ended_epoch": STARTED + last_offset / 1e6,
            "reason": "gateway crashed",
            "crashed": True,
            "torn_at": None if cut == last_end else last_end,
        }
        assert finished.torn_at is None
        verify_journal(path, KEY)


def test_the_end_time_is_the_last_record(tmp_path: Path) -> None:
    path = unfinished_journal(tmp_path)
    finalize_orphans(tmp_path, KEY)
    reader, _ = read_all(path)
    assert reader.end is not None
    assert reader.end["ended"] == "2026-11-25T08:00:01.750000Z"
    assert reader.end["ended_epoch"] == STARTED + 1.5


def test_sealed_journals_are_not_touched(tmp_path: Path) -> None:
    path = unfinished_journal(tmp_path)
    seal_journal(path, KEY)  # sealed without END: recovery must not even look
    before = path.read_bytes(), seal_path(path).read_bytes()
    assert finalize_orphans(tmp_path, KEY) == []
    assert (path.read_bytes(), seal_path(path).read_bytes()) == before


def test_an_ended_but_unsealed_journal_is_only_sealed(tmp_path: Path) -> None:
    path = unfinished_journal(tmp_path)
    with open(path, "ab") as file:
        file.write(encode_record(RecordKind.END, 1_500_000, encode_json({"reason": "browser closed"})))
    content = path.read_bytes()
    assert finalize_orphans(tmp_path, KEY) == [path]
    assert path.read_bytes() == content
    verify_journal(path, KEY)


def test_bytes_after_end_are_cut(tmp_path: Path) -> None:
    path = unfinished_journal(tmp_path)
    with open(path, "ab") as file:
        file.write(encode_record(RecordKind.END, 1_500_000, encode_json({"reason": "browser closed"})))
    content = path.read_bytes()
    with open(path, "ab") as file:
        file.write(b"\x00\x00\x00\x01junk")
    assert finalize_orphans(tmp_path, KEY) == [path]
    assert path.read_bytes() == content
    verify_journal(path, KEY)


def test_a_journal_held_by_a_live_writer_is_left_alone(tmp_path: Path) -> None:
    live_path = recording_path(tmp_path, IDS[1])
    orphan = unfinished_journal(tmp_path)
    with JournalFile.create(live_path, {"session_id": IDS[1], "started_epoch": STARTED}) as live:
        live.write(encode_record(*BODY[1])[:-3])  # mid-write: looks torn
        before = live_path.read_bytes()
        assert finalize_orphans(tmp_path, KEY) == [orphan]
        assert live_path.read_bytes() == before and not seal_path(live_path).exists()
    assert finalize_orphans(tmp_path, KEY) == [live_path]
    verify_journal(live_path, KEY)


@pytest.mark.parametrize("content", [b"", b"DGJRNL", b"not a journal at all"])
def test_an_unreadable_journal_is_kept_and_logged(
    tmp_path: Path, content: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    path = recording_path(tmp_path, IDS[2])
    path.parent.mkdir(parents=True)
    path.write_bytes(content)
    good = unfinished_journal(tmp_path)
    with caplog.at_level(logging.WARNING, logger="recorder.recovery"):
        assert finalize_orphans(tmp_path, KEY) == [good]
    assert path.read_bytes() == content and not seal_path(path).exists()
    assert "cannot finalize" in caplog.text


def test_a_header_without_start_time_ends_at_the_file_time(tmp_path: Path) -> None:
    path = recording_path(tmp_path, IDS[0])
    with JournalFile.create(path, {"session_id": IDS[0]}):
        pass
    os.utime(path, (1795593700.5, 1795593700.5))
    assert finalize_orphans(tmp_path, KEY) == [path]
    reader, _ = read_all(path)
    assert reader.end is not None and reader.end["ended_epoch"] == 1795593700.5


def test_several_journals_and_a_missing_root(tmp_path: Path) -> None:
    paths = [unfinished_journal(tmp_path, session_id) for session_id in IDS]
    assert finalize_orphans(tmp_path, KEY) == sorted(paths)
    assert finalize_orphans(tmp_path, KEY) == []
    assert finalize_orphans(tmp_path / "nowhere", KEY) == []
