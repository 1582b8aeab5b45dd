"""Retention on an injected clock, legal holds (CLI and API), tombstones that ``recordings verify`` reports."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from base.db import Store
from gateway.audit import AuditLog
from gateway.cli.retention import EXIT_DELETED, run_retention
from gateway.config import Config, load_config
from gateway.retention import _span, tombstone
from gateway.web import storage_routes
from recorder.index import RecordingIndex
from recorder.seal import load_or_create_key, seal_journal
from tests.functional.auth_helpers import deskgate, restore_logging  # noqa: F401  (a fixture)
from tests.gateway.test_recording_routes import (
    ALICE_ID,
    BOB_ID,
    TINA_ID,
    ClientFactory,
    add_recordings,
    build_app,
    login,
)
from tests.gateway.test_recording_routes import write_config as write_review_config
from tests.recorder.test_index import end_record, event, journal_header, write_journal
from tests.text_keys import TEXT_KEYS

NOW = datetime(2026, 12, 1, tzinfo=UTC).timestamp()  # the injected clock
OLD_ID, HELD_ID, RECENT_ID = "20260105T090000Z-000000a1", "20260106T090000Z-000000b2", "20261125T090000Z-000000c3"


@pytest.fixture
def config(tmp_path: Path) -> Config:
    path = tmp_path / "deskgate.yaml"
    path.write_text(yaml.safe_dump({"storage": {"recordings": "recordings", "database": "sqlite:///deskgate.db",
                                                "retention": "180d"},
                                    "audit": {"node": "gw-1"}}))
    return load_config(path)


@pytest.fixture
async def recordings(config: Config) -> dict[str, Path]:
    """Three sealed, indexed recordings: two from January, one from last week."""
    key = load_or_create_key(config.storage.recording_key_file)
    store = await Store.open(config.storage.database)
    journals = {}
    try:
        for recording_id in (OLD_ID, HELD_ID, RECENT_ID):
            started = datetime.strptime(recording_id[:16], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
            journal = write_journal(config.storage.recordings, [event(0.0, "session_start"),
                                                                end_record(60.0, "closed", started)],
                                    journal_header(recording_id, started))
            seal = seal_journal(journal, key)
            journal.with_suffix(".mp4").write_bytes(b"video")
            await RecordingIndex(store, TEXT_KEYS).add_journal(journal, seal.sha256, "gw-1")
            journals[recording_id] = journal
    finally:
        await store.close()
    return journals


@pytest.fixture
def cli(restore_logging: None) -> Iterator[None]:  # noqa: F811
    yield


async def test_expired_recordings_are_deleted_with_an_audit_event_and_a_tombstone_held_ones_kept(
        config: Config, recordings: dict[str, Path], cli: None, capsys: pytest.CaptureFixture[str]) -> None:
    config_file = str(config.path)
    assert await deskgate("recordings", "hold", HELD_ID, "--reason", "case 2026-114", "--config", config_file) == 0
    assert "would be deleted" not in capsys.readouterr().out

    planned = await run_retention(config, dry_run=True, clock=lambda: NOW)
    assert [line.split("\t")[0] for line in planned] == [OLD_ID]
    assert recordings[OLD_ID].exists()  # a dry run deletes nothing

    deleted = await run_retention(config, dry_run=False, clock=lambda: NOW)
    assert [line.split("\t")[0] for line in deleted] == [OLD_ID]
    old = recordings[OLD_ID]
    assert not old.exists() and not old.with_name(old.name + ".seal").exists() and not old.with_suffix(".mp4").exists()
    assert recordings[HELD_ID].exists() and recordings[RECENT_ID].exists()

    store = await Store.open(config.storage.database)
    try:
        assert await RecordingIndex(store, TEXT_KEYS).get(OLD_ID) is None
        assert await RecordingIndex(store, TEXT_KEYS).get(HELD_ID) is not None
        stone = await tombstone(store, OLD_ID)
        assert stone is not None and stone.user == "alice" and stone.reason == "retention: older than 180 days"
        assert stone.deleted == datetime.fromtimestamp(NOW, UTC) and stone.sha256 is not None
        audit = AuditLog(store)
        events = [(event.action, event.target, event.outcome) for event in await audit.list()]
        assert ("recording.hold", HELD_ID, "ok") in events
        assert ("recording.delete", "desk-01", "ok") in events
        deletion = next(event for event in await audit.list() if event.action == "recording.delete")
        assert deletion.detail["recording"] == OLD_ID and deletion.detail["sha256"] == stone.sha256
    finally:
        await store.close()

    capsys.readouterr()
    assert await deskgate("recordings", "verify", OLD_ID, "--config", config_file) == EXIT_DELETED
    said = capsys.readouterr().out
    assert f"{OLD_ID}: DELETED by retention on 2026-12-01" in said and stone.sha256 in said
    assert await deskgate("recordings", "verify", HELD_ID, "--config", config_file) == 0
    assert await deskgate("audit", "verify", "--config", config_file) == 0

    assert await deskgate("recordings", "release", HELD_ID, "--config", config_file) == 0
    assert [line.split("\t")[0] for line in await run_retention(config, dry_run=False, clock=lambda: NOW)] == [
        HELD_ID]


async def test_retention_off_keeps_everything(tmp_path: Path, cli: None, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "deskgate.yaml"
    path.write_text(yaml.safe_dump({"storage": {"database": "sqlite:///deskgate.db"}}))
    assert load_config(path).storage.retention is None
    assert await deskgate("recordings", "retention", "--dry-run", "--config", str(path)) == 0
    assert "kept forever" in capsys.readouterr().out


async def test_admins_hold_and_release_through_the_api_others_may_not(
        tmp_path: Path, aiohttp_client: ClientFactory) -> None:
    config = write_review_config(tmp_path)
    app = build_app(config)
    app.add_routes(storage_routes.routes)
    client = await aiohttp_client(app)
    await add_recordings(client.app, config)
    admin, supervisor = await login(client, "root", admin=True), await login(client, "sue", "supervisors")
    response = await client.post(f"/api/v1/recordings/{BOB_ID}/hold", json={"reason": "complaint 77"},
                                 headers=supervisor)
    assert response.status == 403
    response = await client.post(f"/api/v1/recordings/{BOB_ID}/hold", json={}, headers=admin)
    assert response.status == 400
    response = await client.post(f"/api/v1/recordings/{BOB_ID}/hold", json={"reason": "complaint 77"}, headers=admin)
    assert response.status == 200, await response.text()
    assert (await client.post(f"/api/v1/recordings/{BOB_ID}/hold", json={"reason": "again"},
                              headers=admin)).status == 409
    assert (await client.post("/api/v1/recordings/20200101T000000Z-00000000/hold", json={"reason": "x"},
                              headers=admin)).status == 404
    assert (await client.delete(f"/api/v1/recordings/{BOB_ID}/hold", headers=admin)).status == 200
    assert (await client.delete(f"/api/v1/recordings/{BOB_ID}/hold", headers=admin)).status == 409
    actions = [(event.user, event.action, event.target) for event in await client.app[storage_routes.AUDIT].list()]
    assert ("root", "recording.hold", BOB_ID) in actions and ("root", "recording.release", BOB_ID) in actions
    journal = await client.get(f"/api/v1/recordings/{TINA_ID}/journal", headers=admin)
    assert journal.status == 200
    assert await journal.read() == (config.storage.recordings / "2026/11/26" / f"{TINA_ID}.dgj").read_bytes()
    ranged = await client.get(f"/api/v1/recordings/{ALICE_ID}/journal", headers={**admin, "Range": "bytes=0-7"})
    assert ranged.status == 206 and await ranged.read() == b"DGJRNL\x00\x01"


@pytest.mark.parametrize(("seconds", "words"), [(180 * 86400, "180 days"), (12 * 3600, "12 hours"),
                                                (90, "90 seconds"), (600, "10 minutes")])
def test_the_deletion_reason_names_the_retention_span(seconds: float, words: str) -> None:
    assert _span(seconds) == words
