"""Encryption at rest: format-2 journals under per-recording data keys, key rotation, exports, texts.

Journals are written by the real writer (:class:`SessionRecorder`) or, for cut-and-flip
tests, batch by batch; every read goes through the one reader the render, index and
player use. Torn and corrupted encrypted journals are fuzzed (bounded).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from base.metrics import Metrics
from recorder.batches import BatchCodec
from recorder.encrypted_files import CHUNK, encrypt_in_place, read_export
from recorder.errors import IntegrityError, JournalCorrupt, RecordingKeyError
from recorder.journal import (
    JournalFile,
    JournalReader,
    RecordKind,
    encode_batched_record,
    encode_json,
    recording_path,
)
from recorder.keyring import FIRST_KEY_ID, RecordingKeyring, decrypt_text, encrypt_text, new_key
from recorder.recovery import finalize_journal
from recorder.seal import verify_journal
from recorder.writer import SessionRecorder
from tests.recorder.test_writer import KEY, SESSION_ID, header

SECRET = b"customer 4711 Yamada card 4111111111111111"
BODY = [
    (RecordKind.EVENT, 0, encode_json({"type": "session_start"})),
    (RecordKind.SERVER_DATA, 1_000, SECRET),
    (RecordKind.CLIENT_DATA, 250_000, b"\x04\x01\x00\x00\x00\x00\x00\x5a"),
    (RecordKind.SERVER_DATA, 1_500_000, b"\xff" * 9 + SECRET),
]


@pytest.fixture
def keyring(tmp_path: Path) -> RecordingKeyring:
    return RecordingKeyring.load(tmp_path / "keys")


def batched_journal(root: Path, keyring: RecordingKeyring, body: list[tuple[RecordKind, int, bytes]] = BODY,
                    session_id: str = SESSION_ID) -> Path:
    """A format-2 journal without END: one batch per record, as a crash leaves it."""
    path = recording_path(root, session_id)
    codec = BatchCodec.new(session_id, keyring)
    with JournalFile.create(path, {"session_id": session_id, "started_epoch": 1795593600.0, "user": "alice"},
                            codec) as journal:
        for seq, record in enumerate(body, start=1):
            journal.write_batch(codec, seq, encode_batched_record(*record))
    return path


def contents(path: Path, keyring: RecordingKeyring) -> tuple[JournalReader, list[tuple[RecordKind, int, bytes]]]:
    reader = JournalReader(path, keyring=keyring)
    return reader, [(record.kind, record.offset_us, record.payload) for record in reader]


def test_the_first_start_creates_a_private_key_and_loading_again_keeps_it(tmp_path: Path) -> None:
    first = RecordingKeyring.load(tmp_path / "keys")
    key_file = tmp_path / "keys" / f"{FIRST_KEY_ID}.key"
    assert first.current is not None and first.current.key_id == FIRST_KEY_ID
    assert key_file.stat().st_mode & 0o777 == 0o600 and len(key_file.read_bytes()) == 32
    assert RecordingKeyring.load(tmp_path / "keys").current == first.current
    assert RecordingKeyring.load(tmp_path / "keys", encrypt=False).current is None


def test_a_key_file_others_can_read_is_refused(tmp_path: Path) -> None:
    RecordingKeyring.load(tmp_path / "keys")
    (tmp_path / "keys" / f"{FIRST_KEY_ID}.key").chmod(0o644)
    with pytest.raises(RecordingKeyError, match="chmod 600"):
        RecordingKeyring.load(tmp_path / "keys")


async def test_the_writer_encrypts_everything_and_the_reader_opens_it(tmp_path: Path,
                                                                     keyring: RecordingKeyring) -> None:
    recorder = await open_recorder(tmp_path, keyring)
    recorder.server_data(SECRET)
    recorder.client_data(b"typed " + SECRET)
    recorder.event("resize", width=800, height=600)
    sealed = await recorder.close("browser closed")
    raw = sealed.path.read_bytes()
    assert raw.startswith(b"DGJRNL\x00\x02") and b"alice" not in raw and SECRET not in raw
    assert b"browser closed" not in raw and b"resize" not in raw
    reader, records = contents(sealed.path, keyring)
    assert reader.encrypted and reader.header["user"] == "alice" and reader.end is not None
    assert (RecordKind.SERVER_DATA, SECRET) in [(kind, payload) for kind, _, payload in records]
    verify_journal(sealed.path, KEY, keyring)


async def open_recorder(root: Path, keyring: RecordingKeyring) -> SessionRecorder:
    return await SessionRecorder.open(recording_path(root, SESSION_ID), header(), key=KEY, fsync_interval=3600.0,
                                      metrics=Metrics(), keyring=keyring)


def test_a_cut_at_every_byte_keeps_the_complete_batches_and_recovers(tmp_path: Path,
                                                                   keyring: RecordingKeyring) -> None:
    template = batched_journal(tmp_path / "template", keyring)
    full = template.read_bytes()
    reader, _ = contents(template, keyring)
    ends = sorted({record.end for record in reader})
    header_end = JournalReader(template, keyring=keyring)._records_start
    path = recording_path(tmp_path / "cut", SESSION_ID)
    path.parent.mkdir(parents=True)
    for cut in range(header_end, len(full) + 1):
        path.write_bytes(full[:cut])
        complete = sum(1 for end in ends if end <= cut)
        reader, records = contents(path, keyring)
        assert records == BODY[:complete], cut
        assert reader.torn_at == (None if cut in (header_end, *ends) else max([header_end, *ends[:complete]]))
        assert finalize_journal(path, KEY, keyring=keyring)  # END as the next batch, sealed
        finished, kept = contents(path, keyring)
        assert kept[:-1] == BODY[:complete] and finished.end is not None and finished.end["crashed"]
        verify_journal(path, KEY, keyring)


def test_a_flipped_byte_anywhere_is_caught(tmp_path: Path, keyring: RecordingKeyring) -> None:
    path = batched_journal(tmp_path, keyring)
    full = path.read_bytes()
    for at in range(len(full)):
        damaged = bytearray(full)
        damaged[at] ^= 0x40
        path.write_bytes(bytes(damaged))
        try:
            reader, records = contents(path, keyring)
        except (JournalCorrupt, RecordingKeyError):
            continue  # the magic, envelope or HEADER batch: the journal does not open at all
        assert records == BODY[: len(records)] and len(records) < len(BODY), at
        assert reader.torn_at is not None


def test_key_rotation_keeps_old_recordings_readable(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    old = RecordingKeyring.load(keys)
    first = batched_journal(tmp_path / "a", old, session_id="20261125T080000Z-00000001")
    rotated = new_key(keys)
    assert rotated.key_id > FIRST_KEY_ID
    now = RecordingKeyring.load(keys)
    assert now.current == rotated
    second = batched_journal(tmp_path / "b", now, session_id="20261125T090000Z-00000002")
    assert contents(first, now)[1] == BODY and contents(second, now)[1] == BODY
    assert b'"key_id":"k0"' in first.read_bytes()[:400] and rotated.key_id.encode() in second.read_bytes()[:400]

    (keys / f"{FIRST_KEY_ID}.key").unlink()  # the old key is lost
    without = RecordingKeyring.load(keys)
    assert contents(second, without)[1] == BODY
    with pytest.raises(RecordingKeyError, match=r"restore the file k0\.key from a backup"):
        JournalReader(first, keyring=without)


def test_a_wrong_key_or_an_altered_envelope_says_so(tmp_path: Path, keyring: RecordingKeyring) -> None:
    path = batched_journal(tmp_path, keyring)
    other = RecordingKeyring.load(tmp_path / "other-keys")  # also named k0, but another key
    with pytest.raises(RecordingKeyError, match="not among the recording keys"):
        JournalReader(path, keyring=other)
    moved = recording_path(tmp_path / "moved", "20261125T080000Z-ffffffff")
    moved.parent.mkdir(parents=True)
    shutil.copy(path, moved)
    raw = moved.read_bytes()
    moved.write_bytes(raw.replace(SESSION_ID.encode(), b"20261125T080000Z-ffffffff", 1))
    with pytest.raises(RecordingKeyError, match="altered, or belongs to another recording"):
        JournalReader(moved, keyring=keyring)


def test_verify_names_a_missing_key(tmp_path: Path, keyring: RecordingKeyring) -> None:
    path = batched_journal(tmp_path, keyring)
    assert finalize_journal(path, KEY, keyring=keyring)
    with pytest.raises(IntegrityError, match="cannot be checked.*k0"):
        verify_journal(path, KEY, RecordingKeyring((), None))


@settings(max_examples=150, deadline=None)
@given(cut=st.integers(min_value=0), flips=st.lists(st.tuples(st.integers(min_value=0), st.integers(1, 255)),
                                                      max_size=3))
def test_fuzzed_encrypted_journals_only_ever_lose_their_tail(tmp_path_factory: pytest.TempPathFactory,
                                                             cut: int, flips: list[tuple[int, int]]) -> None:
    root = tmp_path_factory.mktemp("fuzz")
    keyring = RecordingKeyring.load(root / "keys")
    path = batched_journal(root, keyring)
    data = bytearray(path.read_bytes())
    data = data[: cut % (len(data) + 1)]
    for at, mask in flips:
        if data:
            data[at % len(data)] ^= mask
    path.write_bytes(bytes(data))
    try:
        reader, records = contents(path, keyring)
    except (JournalCorrupt, RecordingKeyError):
        return
    assert records == BODY[: len(records)]
    assert reader.torn_at is None or reader.torn_at <= len(data)


def test_texts_are_sealed_to_their_recording(keyring: RecordingKeyring) -> None:
    sealed = encrypt_text(keyring, SESSION_ID, "山田太郎 customer 4711")
    assert "4711" not in sealed and sealed.startswith("dgt1.")
    assert decrypt_text(keyring, SESSION_ID, sealed) == "山田太郎 customer 4711"
    with pytest.raises(RecordingKeyError):
        decrypt_text(keyring, "20261125T080000Z-ffffffff", sealed)
    assert decrypt_text(keyring, SESSION_ID, "stored before encryption") == "stored before encryption"
    assert encrypt_text(RecordingKeyring((), None), SESSION_ID, "plain") == "plain"


@pytest.mark.parametrize("size", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 77])
def test_exports_read_back_by_any_range_and_detect_truncation(tmp_path: Path, keyring: RecordingKeyring,
                                                              size: int) -> None:
    data = os.urandom(size)
    path = tmp_path / "video.mp4"
    path.write_bytes(data)
    encrypt_in_place(path, keyring, SESSION_ID)
    assert size < 16 or data[:64] not in path.read_bytes()
    assert read_export(path, keyring) == data
    for start, end in [(0, size), (size // 3, size // 2 + 1), (max(0, size - 5), size), (CHUNK - 2, CHUNK + 2)]:
        start, end = min(start, size), min(end, size)
        assert read_export(path, keyring, start, end) == data[start:end]
    if size > CHUNK:
        path.write_bytes(path.read_bytes()[:-(size % CHUNK or CHUNK) - 16])  # the last chunk lost
        with pytest.raises(RecordingKeyError, match="cut short"):
            read_export(path, keyring, 0, size)
