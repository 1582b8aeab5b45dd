"""The database layer: URLs, table creation, UTC times, upserts, serialized transactions — SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import dataclasses
import glob
import os
import shutil
import sqlite3
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy import inspect, select, text

import auth.tables  # noqa: F401  (registers its tables)
import gateway.audit  # noqa: F401  (registers its table)
import gateway.notices  # noqa: F401  (registers its table)
import gateway.session_directory  # noqa: F401  (registers its table)
from base.db import SchemaTooOld, Store, _advisory_lock_key, async_database_url
from base.times import parse_time
from gateway.audit import AuditLog
from recorder.index import RecordingIndex, VideoState
from recorder.records import SessionEvent
from recorder.summary import RecordingSummary, TimelineEvent
from recorder.tables import recordings
from tests.text_keys import TEXT_KEYS

STARTED = datetime(2026, 11, 25, 8, 0, 0, 123456, tzinfo=UTC)


def recording_row(recording_id: str = "20261125T080000Z-0123abcd", **changes: object) -> dict[str, object]:
    row: dict[str, object] = {
        "id": recording_id, "user": "alice", "source": "127.0.0.1", "target": "desk-01", "protocol": "vnc",
        "started": STARTED, "ended": STARTED + timedelta(minutes=5), "duration": 300.0, "end_reason": "closed",
        "bytes": 1000, "keys": 3, "clicks": 2, "path": "/r/a.dgj", "activity": "[]", "sha256": None, "node": "n1",
    }
    row.update(changes)
    return row


# ---------------------------------------------------------------- URLs and times


@pytest.mark.parametrize(("url", "expected"), [
    ("sqlite:////var/lib/deskgate/deskgate.db", "sqlite+aiosqlite:////var/lib/deskgate/deskgate.db"),
    ("sqlite+aiosqlite:///rel.db", "sqlite+aiosqlite:///rel.db"),
    ("postgresql://gw:pw@db.example/deskgate", "postgresql+asyncpg://gw:pw@db.example/deskgate"),
    ("postgresql+asyncpg://db.example:6432/deskgate?ssl=require",
     "postgresql+asyncpg://db.example:6432/deskgate?ssl=require"),
])
def test_async_database_url_picks_the_async_driver(url: str, expected: str) -> None:
    assert async_database_url(url) == expected


@pytest.mark.parametrize(("url", "message"), [
    ("mysql://db/deskgate", "database 'mysql' is not supported"),
    ("postgresql+psycopg2://db/deskgate", "driver 'psycopg2' is not supported"),
    ("not a url", "is not a database URL"),
])
def test_async_database_url_refuses_what_the_gateway_cannot_run(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        async_database_url(url)


def test_parse_time_reads_dates_and_times_as_utc() -> None:
    assert parse_time("2026-11-25T08:00:00Z") == datetime(2026, 11, 25, 8, tzinfo=UTC)
    assert parse_time("2026-11-25T09:00:00+01:00") == datetime(2026, 11, 25, 8, tzinfo=UTC)
    assert parse_time("2026-11-25T08:00") == datetime(2026, 11, 25, 8, tzinfo=UTC)
    assert parse_time("2026-11-25") == datetime(2026, 11, 25, tzinfo=UTC)
    assert parse_time("2026-11-25", end_of_day=True) == datetime(2026, 11, 26, tzinfo=UTC)
    assert parse_time("2026-11-25T08:00:00Z", end_of_day=True) == datetime(2026, 11, 25, 8, tzinfo=UTC)
    with pytest.raises(ValueError, match="not an ISO-8601 date or time"):
        parse_time("yesterday")


# ---------------------------------------------------------------- SQLite


@pytest.fixture
async def sqlite_store(tmp_path: Path) -> AsyncIterator[Store]:
    store = await Store.open(f"sqlite:///{tmp_path}/state/deskgate.db")
    try:
        yield store
    finally:
        await store.close()


async def test_open_creates_the_directory_the_tables_and_wal_mode(tmp_path: Path) -> None:
    store = await Store.open(f"sqlite:///{tmp_path}/new/dir/deskgate.db")
    try:
        async with store.read() as connection:
            tables = await connection.run_sync(lambda sync: set(inspect(sync).get_table_names()))
            journal_mode = await connection.scalar(text("PRAGMA journal_mode"))
            busy_timeout = await connection.scalar(text("PRAGMA busy_timeout"))
        assert tables == {"recordings", "recording_events", "recording_sources", "recording_text",
                          "recording_bookmarks", "recording_clips", "audit_events", "web_sessions", "totp_secrets",
                          "totp_used_steps", "totp_enrollments", "auth_failures", "auth_known_sources",
                          "disabled_accounts", "live_sessions", "live_session_events", "notices", "jobs",
                          "recording_holds", "recording_tombstones", "screen_text", "pii_findings", "text_tokens"}
        assert journal_mode == "wal"
        assert busy_timeout >= 5000
    finally:
        await store.close()
    reopened = await Store.open(f"sqlite:///{tmp_path}/new/dir/deskgate.db")  # existing tables are kept
    await reopened.close()


async def _drop_column(store: Store, table: str, column: str) -> None:
    async with store.transaction() as connection:
        await connection.execute(text(f'ALTER TABLE {table} DROP COLUMN "{column}"'))


async def _columns(store: Store, table: str) -> list[str]:
    async with store.read() as connection:
        return await connection.run_sync(lambda sync: [c["name"] for c in inspect(sync).get_columns(table)])


async def test_open_adds_the_nullable_columns_an_older_database_lacks(tmp_path: Path,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    url = f"sqlite:///{tmp_path}/deskgate.db"
    store = await Store.open(url)
    await _drop_column(store, "recordings", "user_groups")  # as an older version created it
    async with store.transaction() as connection:
        await connection.execute(recordings.insert().values(recording_row()))
    await store.close()
    with caplog.at_level("INFO", logger="base.db"):
        store = await Store.open(url)
    try:
        assert (await _columns(store, "recordings"))[-1] == "user_groups"
        found = await RecordingIndex(store, TEXT_KEYS).get("20261125T080000Z-0123abcd")
        assert found is not None and found.user_groups is None  # the old row: groups not known
        assert [record.ctx for record in caplog.records if record.msg == "database upgraded: columns added"] == [
            {"columns": "recordings.user_groups"}]
    finally:
        await store.close()
    again = await Store.open(url)  # nothing left to add
    await again.close()


async def test_a_missing_column_that_cannot_be_null_stops_the_start(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/deskgate.db"
    store = await Store.open(url)
    await _drop_column(store, "recordings", "node")
    await store.close()
    with pytest.raises(SchemaTooOld, match="table recordings has no column node, which this version needs"):
        await Store.open(url)


async def test_times_come_back_aware_and_in_utc(sqlite_store: Store) -> None:
    berlin = STARTED.astimezone(timezone(timedelta(hours=1)))
    async with sqlite_store.transaction() as connection:
        await connection.execute(recordings.insert().values(recording_row(started=berlin, ended=None)))
    async with sqlite_store.read() as connection:
        row = (await connection.execute(select(recordings.c.started, recordings.c.ended))).one()
    assert row.started == STARTED and row.started.tzinfo == UTC
    assert row.ended is None


async def test_naive_times_are_refused(sqlite_store: Store) -> None:
    with pytest.raises(Exception, match="naive datetime"):
        async with sqlite_store.transaction() as connection:
            await connection.execute(recordings.insert().values(recording_row(started=datetime(2026, 11, 25))))


async def test_upsert_inserts_then_updates_and_keeps_the_named_columns(sqlite_store: Store) -> None:
    async with sqlite_store.transaction() as connection:
        await connection.execute(sqlite_store.upsert(recordings, recording_row()))
        await connection.execute(recordings.update().values(video_state="ready", video_path="/r/a.mp4"))
        await connection.execute(sqlite_store.upsert(recordings, recording_row(bytes=2000, video_state="none"),
                                                     keep=("video_state", "video_path")))
    async with sqlite_store.read() as connection:
        rows = (await connection.execute(select(recordings.c.bytes, recordings.c.video_state,
                                                recordings.c.video_path))).all()
    assert rows == [(2000, "ready", "/r/a.mp4")]


def _try_write_lock(database: Path) -> bool:
    """Whether another connection (no waiting) can take SQLite's write lock right now."""
    other = sqlite3.connect(database, timeout=0, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        other.execute("ROLLBACK")
        return True
    except sqlite3.OperationalError as error:
        assert "locked" in str(error)
        return False
    finally:
        other.close()


async def test_serialized_holds_the_sqlite_write_lock_and_transaction_does_not(tmp_path: Path) -> None:
    database = tmp_path / "deskgate.db"
    store = await Store.open(f"sqlite:///{database}")
    try:
        async with store.transaction() as connection:
            await connection.execute(select(recordings.c.id))
            assert _try_write_lock(database)  # a reading transaction leaves other writers alone
        async with store.serialized("audit") as connection:
            await connection.execute(select(recordings.c.id))
            assert not _try_write_lock(database)
        assert _try_write_lock(database)
    finally:
        await store.close()


async def test_a_failed_transaction_is_rolled_back(sqlite_store: Store) -> None:
    with pytest.raises(RuntimeError):
        async with sqlite_store.transaction() as connection:
            await connection.execute(recordings.insert().values(recording_row()))
            raise RuntimeError("boom")
    async with sqlite_store.read() as connection:
        assert (await connection.execute(select(recordings.c.id))).all() == []


# ---------------------------------------------------------------- PostgreSQL (a real server, started here)


def _postgres_bin() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"))
    assert found, "PostgreSQL server binaries are needed (Debian package postgresql)"
    return Path(found[-1]).parent


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    """A throwaway PostgreSQL cluster listening only on a Unix socket in a temporary directory."""
    binaries = _postgres_bin()
    workdir = Path(tempfile.mkdtemp(prefix="deskgate-pg-"))
    user = None
    if os.geteuid() == 0:  # postgres refuses to run as root
        shutil.chown(workdir, "postgres")
        user = "postgres"
    data = workdir / "data"

    def run(*args: str | Path) -> None:
        subprocess.run(args, check=True, timeout=60, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, user=user)

    run(binaries / "initdb", "-D", data, "-A", "trust", "-U", "deskgate", "--no-sync")
    run(binaries / "pg_ctl", "-D", data, "-w", "-l", workdir / "log", "-o",
        f"-c listen_addresses='' -k {workdir} -c fsync=off", "start")
    try:
        yield f"postgresql://deskgate@/postgres?host={workdir}"
    finally:
        run(binaries / "pg_ctl", "-D", data, "-m", "immediate", "stop")
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
async def postgres_store(postgres_url: str) -> AsyncIterator[Store]:
    store = await Store.open(postgres_url)
    try:
        async with store.transaction() as connection:
            await connection.execute(text("TRUNCATE recordings, recording_events, audit_events RESTART IDENTITY CASCADE"))
        yield store
    finally:
        await store.close()


async def _other_session_can_take(postgres_url: str, name: str) -> bool:
    host = postgres_url.partition("host=")[2]
    other = await asyncpg.connect(host=host, user="deskgate", database="postgres")
    try:
        async with other.transaction():
            return bool(await other.fetchval("SELECT pg_try_advisory_xact_lock($1)", _advisory_lock_key(name)))
    finally:
        await other.close()


@pytest.mark.functional
async def test_postgresql_tables_times_and_upsert(postgres_store: Store) -> None:
    assert postgres_store.dialect == "postgresql"
    async with postgres_store.transaction() as connection:
        await connection.execute(postgres_store.upsert(recordings, recording_row()))
        await connection.execute(postgres_store.upsert(recordings, recording_row(bytes=2000)))
    async with postgres_store.read() as connection:
        rows = (await connection.execute(select(recordings.c.started, recordings.c.bytes))).all()
    assert rows == [(STARTED, 2000)]


@pytest.mark.functional
async def test_postgresql_nodes_starting_together_create_the_tables_once(postgres_url: str) -> None:
    first = await Store.open(postgres_url)
    async with first.transaction() as connection:
        await connection.execute(text("DROP TABLE recording_sources, recording_text, recording_bookmarks, recording_clips, "
                                      "recording_events, screen_text, pii_findings, text_tokens, recordings, audit_events"))
    await first.close()
    stores = await asyncio.gather(*(Store.open(postgres_url) for _ in range(4)))
    for store in stores:
        await store.close()


@pytest.mark.functional
async def test_postgresql_older_databases_get_the_missing_columns(postgres_url: str) -> None:
    first = await Store.open(postgres_url)
    await _drop_column(first, "recordings", "user_groups")
    await first.close()
    stores = await asyncio.gather(*(Store.open(postgres_url) for _ in range(3)))  # replicas upgrading together
    try:
        assert "user_groups" in await _columns(stores[0], "recordings")
    finally:
        for store in stores:
            await store.close()


@pytest.mark.functional
async def test_postgresql_serialized_holds_an_advisory_lock(postgres_store: Store, postgres_url: str) -> None:
    async with postgres_store.serialized("audit"):
        assert not await _other_session_can_take(postgres_url, "audit")
        assert await _other_session_can_take(postgres_url, "another lock")
    assert await _other_session_can_take(postgres_url, "audit")


@pytest.mark.functional
async def test_postgresql_audit_chain_and_recording_index(postgres_store: Store, postgres_url: str) -> None:
    second_node = await Store.open(postgres_url)
    try:
        logs = [AuditLog(postgres_store), AuditLog(second_node)]  # two nodes: separate process-level locks
        for round_ in range(10):
            for node, audit in enumerate(logs):
                await audit.record("login", user=f"user{node}", source="10.0.0.1", outcome="success", n=round_)
        verdict = await logs[0].verify()
        assert (verdict.ok, verdict.checked) == (True, 20)
        async with postgres_store.transaction() as connection:
            await connection.execute(text("UPDATE audit_events SET outcome = 'failure' WHERE id = 7"))
        verdict = await logs[1].verify()
        assert (verdict.ok, verdict.first_bad_id) == (False, 7)

        index = RecordingIndex(postgres_store, TEXT_KEYS)
        summary = RecordingSummary(id="20261125T080000Z-0123abcd", user="alice", source="127.0.0.1",
                                   target="desk-01", protocol="vnc", started=STARTED, ended=None, duration=1.5,
                                   end_reason=None, bytes=10, keys=0, clicks=0, path="/r/a.dgj",
                                   events=[TimelineEvent(0.5, SessionEvent.resize(800, 600))])
        await index.add(summary, None, "n1")
        assert await index.set_video(summary.id, VideoState.READY, "/r/a.mp4")
        await index.add(summary, "ab" * 32, "n1")
        row = await index.get(summary.id)
        assert row is not None and row.video_state == VideoState.READY and row.sha256 == "ab" * 32
        assert [event.to_json() for event in await index.events(summary.id)] == [
            {"t": 0.5, "type": "resize", "width": 800, "height": 600}]
        assert [r.id for r in await index.search(since=STARTED, until=STARTED + timedelta(seconds=1))] == [summary.id]
        terminal = dataclasses.replace(summary, id="20261125T080001Z-0123abce", protocol="ssh",
                                       screen_text="$ grep 山田 clients.csv")
        await index.add(terminal, None, "n1")  # its output sealed, searched through its tokens
        assert [r.id for r in await index.search(text="山田")] == [terminal.id]
        assert await index.search(text="山本") == []
    finally:
        await second_node.close()
