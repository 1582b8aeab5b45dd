"""The journal format: ids and paths, record encoding, the locked writer, and a reader that stops at a torn tail."""

from __future__ import annotations

import fcntl
import json
import os
import stat
import struct
import tempfile
import tracemalloc
import zlib
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recorder.errors import JournalCorrupt
from recorder.journal import (
    JOURNAL_MAGIC,
    MAX_RECORD,
    RECORD_HEADER,
    RECORD_OVERHEAD,
    SESSION_ID_RE,
    JournalFile,
    JournalReader,
    JournalRecord,
    RecordKind,
    encode_json,
    encode_record,
    is_session_id,
    iso_utc,
    new_session_id,
    recording_path,
)
from tests.test_layering import IO_MODULES, imported_roots

SESSION_ID = "20261125T080000Z-1a2b3c4d"
HEADER = {"format": 1, "session_id": SESSION_ID, "started_epoch": 1795593600.0, "user": "alice"}
FUZZ = settings(max_examples=300, deadline=None)

#: The records after HEADER of the small journal most tests cut, flip and fuzz.
BODY = [
    (RecordKind.EVENT, 0, encode_json({"type": "session_start"})),
    (RecordKind.SERVER_DATA, 10, b"\x00\x00\x00\x01" + bytes(range(40))),
    (RecordKind.CLIENT_DATA, 10, b"\x04\x01\x00\x00\x00\x00\xff\x0d"),
    (RecordKind.SERVER_DATA, 2_000, b""),
    (RecordKind.INPUT_COUNTS, 2_500, encode_json({"keys": 3, "pointer": 9, "clicks": 1, "cut_text": 0})),
    (RecordKind.EVENT, 3_000_000, encode_json({"type": "session_end", "reason": "browser closed"})),
    (RecordKind.END, 3_000_000, encode_json({"ended": "x", "ended_epoch": 1.0, "reason": "browser closed",
                                             "crashed": False, "torn_at": None})),
]


def write_journal(path: Path, body: list[tuple[RecordKind, int, bytes]] = BODY) -> bytes:
    with JournalFile.create(path, HEADER) as journal:
        journal.write(b"".join(encode_record(*record) for record in body))
    return path.read_bytes()


def read_all(path: Path, **kwargs: int) -> tuple[JournalReader, list[JournalRecord]]:
    reader = JournalReader(path, **kwargs)
    return reader, list(reader)


def header_end() -> int:
    return len(JOURNAL_MAGIC) + len(encode_record(RecordKind.HEADER, 0, encode_json(HEADER)))


def boundaries() -> list[int]:
    """File offsets where each record of BODY ends."""
    ends, position = [], header_end()
    for _, _, payload in BODY:
        position += RECORD_OVERHEAD + len(payload)
        ends.append(position)
    return ends


class TestSessionIds:
    def test_new_id_is_the_utc_start_and_random_hex(self) -> None:
        moment = datetime(2026, 11, 25, 9, 30, 5, 123456, tzinfo=timezone(timedelta(hours=1)))
        first, second = new_session_id(moment), new_session_id(moment)
        assert first.startswith("20261125T083005Z-") and SESSION_ID_RE.match(first)
        assert first != second

    def test_new_id_defaults_to_now(self) -> None:
        before = datetime.now(UTC)
        session_id = new_session_id()
        assert session_id[:8] in {f"{before:%Y%m%d}", f"{datetime.now(UTC):%Y%m%d}"}

    def test_recording_path_is_by_day(self, tmp_path: Path) -> None:
        assert recording_path(tmp_path, SESSION_ID) == tmp_path / "2026" / "11" / "25" / f"{SESSION_ID}.dgj"

    @pytest.mark.parametrize("bad", [
        "", "../../etc/passwd", SESSION_ID + "\n", SESSION_ID.upper(), SESSION_ID[:-1], SESSION_ID + "0",
        "2026112٥T080000Z-1a2b3c4d",  # an Arabic-Indic digit: \d must not accept it
        "20261125T080000Z-1a2b3c4d/../x", "20261125T080000Z_1a2b3c4d",
    ])
    def test_malformed_ids_never_become_paths(self, tmp_path: Path, bad: str) -> None:
        assert not is_session_id(bad)
        with pytest.raises(ValueError, match="not a recording id"):
            recording_path(tmp_path, bad)

    def test_iso_utc(self) -> None:
        assert iso_utc(1795593600.123456) == "2026-11-25T08:00:00.123456Z"


class TestEncoding:
    def test_golden_bytes(self) -> None:
        record = encode_record(RecordKind.EVENT, 0x0102030405060708, b'{"a":1}')
        assert record.hex() == "00000007" "04" "0102030405060708" "7b2261223a317d" "1d953a1d"
        assert zlib.crc32(record[:-4]) == 0x1D953A1D

    def test_kinds_are_fixed(self) -> None:
        assert [(kind.name, kind.value) for kind in RecordKind] == [
            ("HEADER", 1), ("SERVER_DATA", 2), ("CLIENT_DATA", 3), ("EVENT", 4), ("INPUT_COUNTS", 5), ("END", 6)]

    def test_payload_over_the_limit_is_refused(self) -> None:
        with pytest.raises(ValueError, match="at most"):
            encode_record(RecordKind.SERVER_DATA, 0, bytes(MAX_RECORD + 1))

    def test_json_is_strict(self) -> None:
        assert encode_json({"name": "bureau ü"}) == '{"name":"bureau ü"}'.encode()
        with pytest.raises(ValueError):
            encode_json({"x": float("nan")})


class TestJournalFile:
    def test_create_writes_magic_and_header_durably_with_private_modes(self, tmp_path: Path) -> None:
        path = recording_path(tmp_path / "recordings", SESSION_ID)
        with JournalFile.create(path, HEADER) as journal:
            assert journal.path == path and journal.size == header_end() == path.stat().st_size
        assert path.read_bytes().startswith(JOURNAL_MAGIC)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        for directory in (path.parent, path.parent.parent, path.parent.parent.parent, tmp_path / "recordings"):
            assert stat.S_IMODE(directory.stat().st_mode) == 0o700
        reader, records = read_all(path)
        assert reader.header == HEADER and records == [] and reader.torn_at is None and reader.end is None

    def test_create_never_overwrites(self, tmp_path: Path) -> None:
        path = tmp_path / f"{SESSION_ID}.dgj"
        original = write_journal(path)
        with pytest.raises(FileExistsError):
            JournalFile.create(path, HEADER)
        assert path.read_bytes() == original

    def test_an_open_journal_is_locked_against_other_writers(self, tmp_path: Path) -> None:
        path = tmp_path / f"{SESSION_ID}.dgj"
        with JournalFile.create(path, HEADER):
            assert JournalFile.reopen(path) is None
            fd = os.open(path, os.O_RDONLY)
            try:
                with pytest.raises(BlockingIOError):
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            finally:
                os.close(fd)
        reopened = JournalFile.reopen(path)
        assert reopened is not None and reopened.size == header_end()
        reopened.close()
        reopened.close()  # idempotent

    def test_unserialisable_header_creates_nothing(self, tmp_path: Path) -> None:
        with pytest.raises(TypeError):
            JournalFile.create(tmp_path / "x.dgj", {"when": datetime.now(UTC)})
        assert list(tmp_path.iterdir()) == []

    def test_truncate_then_write_continues_at_the_cut(self, tmp_path: Path) -> None:
        path = tmp_path / f"{SESSION_ID}.dgj"
        with JournalFile.create(path, HEADER) as journal:
            journal.write(b"partial record")
            journal.truncate(header_end())
            journal.write(encode_record(*BODY[0]))
        _, records = read_all(path)
        assert [(r.kind, r.offset_us, r.payload) for r in records] == [BODY[0]]


class TestReader:
    def test_reads_every_record_in_order(self, tmp_path: Path) -> None:
        path = tmp_path / "j.dgj"
        write_journal(path)
        reader, records = read_all(path)
        assert [(r.kind, r.offset_us, r.payload) for r in records] == BODY
        assert [r.end for r in records] == boundaries()
        assert records[0].position == header_end()
        assert reader.torn_at is None and reader.last_offset_us == 3_000_000
        assert reader.end is not None and reader.end["reason"] == "browser closed"
        assert reader.valid_size() == path.stat().st_size

    def test_a_cut_at_every_byte_keeps_exactly_the_complete_records(self, tmp_path: Path) -> None:
        full = write_journal(tmp_path / "full.dgj")
        ends = boundaries()
        path = tmp_path / "cut.dgj"
        for cut in range(len(full) + 1):
            path.write_bytes(full[:cut])
            if cut < header_end():
                with pytest.raises(JournalCorrupt):
                    JournalReader(path)
                continue
            reader, records = read_all(path)
            complete = [end for end in ends if end <= cut]
            assert [r.end for r in records] == complete, cut
            last_end = complete[-1] if complete else header_end()
            assert reader.torn_at == (None if cut == last_end else last_end), cut
            assert reader.end == (json.loads(BODY[-1][2]) if cut == len(full) else None)
            assert reader.valid_size() == last_end

    def test_a_flipped_byte_anywhere_stops_reading_at_its_record(self, tmp_path: Path) -> None:
        full = write_journal(tmp_path / "full.dgj")
        starts = [header_end(), *boundaries()[:-1]]
        path = tmp_path / "flipped.dgj"
        for position in range(len(full)):
            damaged = bytearray(full)
            damaged[position] ^= 0x40
            path.write_bytes(damaged)
            if position < header_end():
                with pytest.raises(JournalCorrupt):
                    JournalReader(path)
                continue
            reader, records = read_all(path)
            hit = max(start for start in starts if start <= position)
            assert reader.torn_at == hit, position
            assert [r.position for r in records] == [start for start in starts if start < hit]

    @pytest.mark.parametrize("content, why", [
        (b"", "magic"),
        (b"DGJRNL\x00\x02" + encode_record(RecordKind.HEADER, 0, b"{}"), "magic"),
        (JOURNAL_MAGIC, "HEADER"),
        (JOURNAL_MAGIC + encode_record(RecordKind.EVENT, 0, b"{}"), "HEADER"),
        (JOURNAL_MAGIC + encode_record(RecordKind.HEADER, 0, b"{not json"), "HEADER"),
        (JOURNAL_MAGIC + encode_record(RecordKind.HEADER, 0, b"[1, 2]"), "HEADER"),
        (JOURNAL_MAGIC + encode_record(RecordKind.HEADER, 0, b'"\xff"'), "HEADER"),
        (JOURNAL_MAGIC + encode_record(RecordKind.HEADER, 0, b"[" * 100_000), "HEADER"),
    ])
    def test_missing_or_garbled_magic_or_header_is_corrupt(self, tmp_path: Path, content: bytes, why: str) -> None:
        path = tmp_path / "bad.dgj"
        path.write_bytes(content)
        with pytest.raises(JournalCorrupt, match=why):
            JournalReader(path)

    @pytest.mark.parametrize("tail", [
        encode_record(RecordKind.SERVER_DATA, 5, b"ok") + RECORD_HEADER.pack(0, 7, 6) + b"\x00" * 4,
        encode_record(RecordKind.SERVER_DATA, 5, b"ok") + encode_record(RecordKind.SERVER_DATA, 4, b"back in time"),
        encode_record(RecordKind.SERVER_DATA, 5, b"ok") + encode_record(RecordKind.HEADER, 5, b"{}"),
        encode_record(RecordKind.SERVER_DATA, 5, b"ok") + encode_record(RecordKind.END, 5, b"not json"),
    ], ids=["unknown kind", "time goes back", "second header", "END not JSON"])
    def test_well_checksummed_but_invalid_records_end_the_journal(self, tmp_path: Path, tail: bytes) -> None:
        path = tmp_path / "j.dgj"
        write_journal(path, [])
        with open(path, "ab") as file:
            file.write(tail)
        reader, records = read_all(path)
        assert [r.payload for r in records] == [b"ok"]
        assert reader.torn_at == records[0].end and reader.end is None

    def test_unknown_kind_with_a_valid_crc_is_corrupt(self, tmp_path: Path) -> None:
        header = RECORD_HEADER.pack(1, 7, 0)
        path = tmp_path / "j.dgj"
        write_journal(path, [])
        with open(path, "ab") as file:
            file.write(header + b"x" + struct.pack(">I", zlib.crc32(b"x", zlib.crc32(header))))
        reader, records = read_all(path)
        assert records == [] and reader.torn_at == header_end()

    def test_nothing_may_follow_end(self, tmp_path: Path) -> None:
        path = tmp_path / "j.dgj"
        full = write_journal(path)
        with open(path, "ab") as file:
            file.write(encode_record(RecordKind.SERVER_DATA, 3_000_000, b"after the end"))
        reader, records = read_all(path)
        assert len(records) == len(BODY) and reader.end is not None and reader.torn_at == len(full)

    @pytest.mark.parametrize("max_record", [MAX_RECORD, 1 << 32])
    def test_a_huge_length_is_rejected_without_allocating(self, tmp_path: Path, max_record: int) -> None:
        path = tmp_path / "j.dgj"
        write_journal(path, [])
        with open(path, "ab") as file:
            file.write(RECORD_HEADER.pack(0xFFFFFFFF, RecordKind.SERVER_DATA, 1) + bytes(64))
        reader = JournalReader(path, max_record=max_record)
        tracemalloc.start()
        try:
            records = list(reader)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert records == [] and reader.torn_at == header_end()
        assert peak < 64 * 1024

    def test_a_length_over_max_record_is_corrupt(self, tmp_path: Path) -> None:
        path = tmp_path / "j.dgj"
        write_journal(path, [(RecordKind.SERVER_DATA, 0, bytes(100))])
        reader, records = read_all(path, max_record=99)
        assert records == [] and reader.torn_at == header_end()

    def test_iterating_again_starts_over(self, tmp_path: Path) -> None:
        path = tmp_path / "j.dgj"
        write_journal(path)
        reader = JournalReader(path)
        assert list(reader) == list(reader) and len(list(reader)) == len(BODY)

    @FUZZ
    @given(st.binary(max_size=400))
    def test_random_bytes_after_a_valid_header_stop_cleanly(self, tail: bytes) -> None:
        self._check_stops_cleanly(tail)

    @FUZZ
    @given(st.lists(st.sampled_from(BODY[:-1]), max_size=5), st.binary(max_size=60), st.integers(0, 40))
    def test_valid_records_then_garbage_stop_cleanly(
        self, records: list[tuple[RecordKind, int, bytes]], garbage: bytes, cut: int
    ) -> None:
        ordered = sorted(records, key=lambda record: record[1])
        body = b"".join(encode_record(*record) for record in ordered)
        kept = self._check_stops_cleanly(body + garbage[cut:])
        assert kept[: len(ordered)] == [(kind, offset, payload) for kind, offset, payload in ordered]

    def _check_stops_cleanly(self, tail: bytes) -> list[tuple[RecordKind, int, bytes]]:
        # A directory per example: hypothesis does not reset function-scoped fixtures such as tmp_path.
        with tempfile.TemporaryDirectory() as directory:
            path = Path(directory) / "j.dgj"
            write_journal(path, [])
            with open(path, "ab") as file:
                file.write(tail)
            reader, records = read_all(path)
        size = header_end() + len(tail)
        end = records[-1].end if records else header_end()
        assert all(r.end <= size for r in records)
        assert reader.torn_at == (None if end == size else end)
        return [(r.kind, r.offset_us, r.payload) for r in records]


@pytest.mark.parametrize("module", ["journal.py", "seal.py", "recovery.py"])
def test_the_journal_modules_do_no_network_or_event_loop_io(module: str) -> None:
    source = (Path(__file__).resolve().parents[2] / "recorder" / module).read_text()
    assert imported_roots(source) & IO_MODULES == set()
