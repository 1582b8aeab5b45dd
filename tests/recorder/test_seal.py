"""Seals: SHA-256 + HMAC under the recording key; verification says why a journal fails."""

from __future__ import annotations

import hashlib
import hmac
import json
import stat
from pathlib import Path

import pytest

from recorder.errors import IntegrityError, JournalCorrupt, RecordingUnavailable
from recorder.journal import (
    JournalFile,
    RecordKind,
    encode_json,
    encode_record,
    recording_path,
)
from recorder.seal import (
    KEY_SIZE,
    Seal,
    load_or_create_key,
    read_seal,
    seal_journal,
    seal_path,
    verify_journal,
)

SESSION_ID = "20261125T080000Z-1a2b3c4d"
OTHER_ID = "20261125T090000Z-00000000"
KEY = bytes(range(32))


def finished_journal(root: Path, session_id: str = SESSION_ID, *, end: bool = True) -> Path:
    path = recording_path(root, session_id)
    with JournalFile.create(path, {"session_id": session_id, "started_epoch": 1795593600.0}) as journal:
        journal.write(encode_record(RecordKind.SERVER_DATA, 5, b"\x00\x00\x00\x00pixels"))
        journal.write(encode_record(RecordKind.CLIENT_DATA, 9, b"\x04\x01\x00\x00\x00\x00\x00\x61"))
        if end:
            payload = {"ended": "2026-11-25T08:00:00.000009Z", "ended_epoch": 1795593600.000009,
                       "reason": "browser closed", "crashed": False, "torn_at": None}
            journal.write(encode_record(RecordKind.END, 9, encode_json(payload)))
    return path


@pytest.fixture
def sealed(tmp_path: Path) -> Path:
    path = finished_journal(tmp_path)
    seal_journal(path, KEY)
    return path


class TestSeal:
    def test_the_sidecar_holds_size_hash_and_hmac(self, sealed: Path) -> None:
        content = sealed.read_bytes()
        sidecar = seal_path(sealed)
        assert sidecar.name == f"{SESSION_ID}.dgj.seal"
        assert stat.S_IMODE(sidecar.stat().st_mode) == 0o600
        fields = json.loads(sidecar.read_bytes())
        sha256 = hashlib.sha256(content).hexdigest()
        expected_mac = hmac.new(KEY, f"{SESSION_ID}:{len(content)}:{sha256}".encode(), hashlib.sha256).hexdigest()
        assert fields == {"session_id": SESSION_ID, "size": len(content), "sha256": sha256, "hmac": expected_mac}
        assert read_seal(sealed) == Seal(**fields)
        assert sorted(p.name for p in sealed.parent.iterdir()) == [sealed.name, sidecar.name]  # no temporary left

    def test_an_intact_journal_verifies(self, sealed: Path) -> None:
        verify_journal(sealed, KEY)

    def test_resealing_replaces_the_seal(self, sealed: Path) -> None:
        assert seal_journal(sealed, KEY) == read_seal(sealed)
        verify_journal(sealed, KEY)

    def test_a_journal_without_a_session_id_cannot_be_sealed(self, tmp_path: Path) -> None:
        path = tmp_path / "x.dgj"
        JournalFile.create(path, {"started_epoch": 0.0}).close()
        with pytest.raises(JournalCorrupt, match="session_id"):
            seal_journal(path, KEY)


class TestVerify:
    def test_a_flipped_byte_anywhere_is_a_hash_mismatch(self, sealed: Path) -> None:
        original = sealed.read_bytes()
        for position in range(len(original)):
            damaged = bytearray(original)
            damaged[position] ^= 0x01
            sealed.write_bytes(damaged)
            with pytest.raises(IntegrityError, match="SHA-256 .* differs from its seal: its content was changed"):
                verify_journal(sealed, KEY)

    @pytest.mark.parametrize("keep", [0, 1, 8, -1, -20])
    def test_a_truncated_journal_is_torn(self, sealed: Path, keep: int) -> None:
        content = sealed.read_bytes()
        sealed.write_bytes(content[:keep])
        with pytest.raises(IntegrityError, match=r"was sealed at \d+ bytes: it was truncated \(torn\)"):
            verify_journal(sealed, KEY)

    def test_an_appended_byte_changes_the_size(self, sealed: Path) -> None:
        with open(sealed, "ab") as file:
            file.write(b"\x00")
        with pytest.raises(IntegrityError, match="appended to"):
            verify_journal(sealed, KEY)

    def test_another_key_fails_the_hmac(self, sealed: Path) -> None:
        with pytest.raises(IntegrityError, match="wrong HMAC.*another recording key"):
            verify_journal(sealed, bytes(32))

    @pytest.mark.parametrize("field, value", [("size", 1), ("sha256", "0" * 64), ("session_id", OTHER_ID)])
    def test_an_edited_seal_fails_the_hmac(self, sealed: Path, field: str, value: object) -> None:
        fields = json.loads(seal_path(sealed).read_bytes())
        fields[field] = value
        seal_path(sealed).write_text(json.dumps(fields))
        with pytest.raises(IntegrityError, match="wrong HMAC"):
            verify_journal(sealed, KEY)

    def test_a_forged_seal_over_changed_content_fails_without_the_key(self, sealed: Path) -> None:
        with open(sealed, "ab") as file:
            file.write(encode_record(RecordKind.SERVER_DATA, 10, b"injected"))
        seal_journal(sealed, b"attacker key".ljust(32))
        with pytest.raises(IntegrityError, match="wrong HMAC"):
            verify_journal(sealed, KEY)

    def test_a_missing_seal(self, tmp_path: Path) -> None:
        path = finished_journal(tmp_path)
        with pytest.raises(IntegrityError, match="has no seal"):
            verify_journal(path, KEY)

    @pytest.mark.parametrize("content", [
        b"", b"{", b"[]", b'{"size": 1}', b'{"session_id": 1, "size": "1", "sha256": "", "hmac": ""}', b"\xff"])
    def test_an_unreadable_seal(self, sealed: Path, content: bytes) -> None:
        seal_path(sealed).write_bytes(content)
        with pytest.raises(IntegrityError, match="seal .* is unreadable"):
            verify_journal(sealed, KEY)

    def test_a_missing_journal(self, sealed: Path) -> None:
        sealed.unlink()
        with pytest.raises(IntegrityError, match="is missing"):
            verify_journal(sealed, KEY)

    def test_a_journal_renamed_with_its_seal_is_detected(self, sealed: Path) -> None:
        renamed = sealed.with_name(f"{OTHER_ID}.dgj")
        sealed.rename(renamed)
        seal_path(sealed).rename(seal_path(renamed))
        with pytest.raises(IntegrityError, match="different sessions"):
            verify_journal(renamed, KEY)

    def test_a_torn_journal_that_was_sealed_anyway(self, tmp_path: Path) -> None:
        path = finished_journal(tmp_path, end=False)
        with open(path, "ab") as file:
            file.write(b"\x00\x00\x00")
        seal_journal(path, KEY)
        with pytest.raises(IntegrityError, match="torn at byte"):
            verify_journal(path, KEY)

    def test_a_sealed_journal_without_end(self, tmp_path: Path) -> None:
        path = finished_journal(tmp_path, end=False)
        seal_journal(path, KEY)
        with pytest.raises(IntegrityError, match="without an END"):
            verify_journal(path, KEY)


class TestKey:
    def test_created_once_private_and_random(self, tmp_path: Path) -> None:
        path = tmp_path / "keys" / "recording.key"
        key = load_or_create_key(path)
        assert len(key) == KEY_SIZE and path.read_bytes() == key
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert load_or_create_key(path) == key
        assert load_or_create_key(tmp_path / "other.key") != key

    @pytest.mark.parametrize("size", [0, 31, 33])
    def test_a_key_of_the_wrong_size_is_refused(self, tmp_path: Path, size: int) -> None:
        path = tmp_path / "recording.key"
        path.write_bytes(bytes(size))
        path.chmod(0o600)
        with pytest.raises(RecordingUnavailable, match=f"holds {size} bytes instead of 32"):
            load_or_create_key(path)

    def test_a_key_others_can_read_is_refused(self, tmp_path: Path) -> None:
        path = tmp_path / "recording.key"
        path.write_bytes(bytes(32))
        path.chmod(0o640)
        with pytest.raises(RecordingUnavailable, match="chmod 600"):
            load_or_create_key(path)


class TestDigestWhileWriting:
    def test_a_created_journal_knows_its_digest_until_it_is_cut(self, tmp_path: Path) -> None:
        path = recording_path(tmp_path, SESSION_ID)
        with JournalFile.create(path, {"session_id": SESSION_ID, "started_epoch": 0.0}) as journal:
            journal.write(b"more bytes")
            assert journal.content_digest() == (path.stat().st_size, hashlib.sha256(path.read_bytes()).hexdigest())
            journal.truncate(journal.size - 3)
            assert journal.content_digest() is None
        reopened = JournalFile.reopen(path)
        assert reopened is not None and reopened.content_digest() is None
        reopened.close()

    def test_a_digest_of_another_size_is_not_trusted(self, tmp_path: Path) -> None:
        path = finished_journal(tmp_path)
        stale = (path.stat().st_size - 1, "0" * 64)
        seal = seal_journal(path, KEY, written=stale)
        assert (seal.size, seal.sha256) == (path.stat().st_size, hashlib.sha256(path.read_bytes()).hexdigest())
        verify_journal(path, KEY)
