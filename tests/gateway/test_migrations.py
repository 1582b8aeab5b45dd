"""Schema migrations: databases made by earlier releases upgrade to today's schema on SQLite and PostgreSQL,
the migrations and the code's tables agree, and the gateway refuses a database it does not match.

The earlier releases' schemas are stored DDL (``tests/fixtures/schemas/<commit>-<dialect>.sql``): what
``base.db.metadata`` of that commit created, compiled for each database.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy import select, text
from sqlalchemy.engine import make_url

from base.db import Store, metadata
from gateway.cli import main
from gateway.schema import (
    SchemaOutOfDate,
    head_revision,
    open_current_store,
    revision_of,
    schema_differences,
    upgrade,
)
from recorder.tables import recordings
from tests.base.test_db import postgres_url  # noqa: F401  (a fixture: a throwaway cluster)

SCHEMAS = Path(__file__).parents[1] / "fixtures" / "schemas"
ROOT = Path(__file__).parents[2]
RELEASES = ("ba34e6d", "3d5aa93")  # the first with base/db.py; the last before migrations
OLD_ROWS = [
    "INSERT INTO recordings (id, \"user\", source, target, protocol, started, duration, bytes, keys, clicks, path, "
    "activity, node) VALUES ('20261201T080000Z-00000001', 'alice', '10.0.0.5', 'desk-01', 'vnc', "
    "'2026-12-01 08:00:00', 60.0, 1234, 3, 2, '/r/a.dgj', '[]', 'gw-a')",
    "INSERT INTO totp_secrets (username, secret, enrolled) VALUES ('alice', 'sealed', '2026-12-01 08:00:00')",
]
ADD_A_MIGRATION = ("the code's tables (base.db.metadata) and the migrations (gateway/migrations/versions) differ; "
                   "add a migration for your change (README: 'Adding a migration'):\n")


def load_sqlite(path: Path, release: str) -> str:
    with sqlite3.connect(path) as connection:
        connection.executescript((SCHEMAS / f"{release}-sqlite.sql").read_text())
        for row in OLD_ROWS:
            connection.execute(row)
    return f"sqlite:///{path}"


@pytest.fixture
async def postgres_database(postgres_url: str) -> AsyncIterator[str]:  # noqa: F811
    """An empty database of its own in the throwaway cluster."""
    host = postgres_url.partition("host=")[2]
    name = f"migrations_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(host=host, user="deskgate", database="postgres")
    try:
        await admin.execute(f"CREATE DATABASE {name}")
        yield postgres_url.replace("/postgres?", f"/{name}?")
    finally:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.close()


async def load_postgres(url: str, release: str) -> None:
    connection = await asyncpg.connect(host=url.partition("host=")[2], user="deskgate", database=make_url(url).database)
    try:
        await connection.execute((SCHEMAS / f"{release}-postgresql.sql").read_text())
        for row in OLD_ROWS:
            await connection.execute(row)
    finally:
        await connection.close()


async def assert_upgrades(url: str) -> None:
    """``url`` holds an earlier release's schema and rows: refused, then upgraded, current, its rows kept."""
    with pytest.raises(SchemaOutOfDate, match="older schema .* run: deskgate db upgrade --config"):
        await open_current_store(url)
    assert await upgrade(url) == (None, head_revision())
    assert await upgrade(url) == (head_revision(), head_revision())  # again: nothing to do
    store = await open_current_store(url)
    try:
        async with store.read() as connection:
            differences = await connection.run_sync(schema_differences)
            row = (await connection.execute(select(recordings))).one()
        assert differences == [], ADD_A_MIGRATION + "\n".join(map(str, differences))
        assert (row.user, row.started, row.user_groups) == ("alice", datetime(2026, 12, 1, 8, tzinfo=UTC), None)
    finally:
        await store.close()


@pytest.mark.parametrize("release", RELEASES)
async def test_an_earlier_release_database_upgrades_on_sqlite(tmp_path: Path, release: str) -> None:
    await assert_upgrades(load_sqlite(tmp_path / "old.db", release))


@pytest.mark.parametrize("release", RELEASES)
async def test_an_earlier_release_database_upgrades_on_postgresql(postgres_database: str, release: str) -> None:
    await load_postgres(postgres_database, release)
    await assert_upgrades(postgres_database)


async def test_the_migrations_build_exactly_the_code_tables(tmp_path: Path, postgres_database: str) -> None:
    """What `alembic check` does: migrate empty databases, compare them with base.db.metadata."""
    for url in (f"sqlite:///{tmp_path}/empty.db", postgres_database):
        assert await upgrade(url) == (None, head_revision())
        store = await Store.open(url, create=False)
        try:
            async with store.read() as connection:
                differences = await connection.run_sync(schema_differences)
        finally:
            await store.close()
        assert differences == [], ADD_A_MIGRATION + "\n".join(map(str, differences))


async def test_an_empty_database_is_created_and_stamped(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/new.db"
    store = await open_current_store(url)
    await store.close()
    assert await revision_of(url) == head_revision()
    store = await Store.open(url, create=False)
    try:
        async with store.read() as connection:
            tables = set(await connection.run_sync(lambda sync: sync.dialect.get_table_names(sync)))
    finally:
        await store.close()
    assert tables == set(metadata.tables) | {"alembic_version"}


async def test_a_current_unversioned_database_is_stamped_and_a_newer_one_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/made-by-store-open.db"
    await (await Store.open(url)).close()  # every table, no revision (as tests make them)
    await (await open_current_store(url)).close()
    assert await revision_of(url) == head_revision()
    store = await Store.open(url, create=False)
    async with store.transaction() as connection:
        await connection.execute(text("UPDATE alembic_version SET version_num = '9999_from_the_future'"))
    await store.close()
    with pytest.raises(SchemaOutOfDate, match="revision 9999_from_the_future, which is newer"):
        await open_current_store(url)


def test_serve_refuses_an_old_schema_and_db_upgrade_fixes_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                                             ) -> None:
    database = load_sqlite(tmp_path / "old.db", RELEASES[-1])
    config = tmp_path / "deskgate.yaml"
    config.write_text(f"listen: {{http: '127.0.0.1:0', metrics: '127.0.0.1:0'}}\nstorage: {{database: '{database}'}}\n"
                      "auth: {local: {users_file: users.yaml}}\n")
    serve = subprocess.run([sys.executable, "-m", "gateway.cli", "serve", "--config", str(config)], cwd=ROOT,
                           capture_output=True, text=True, timeout=60)
    assert serve.returncode == 1
    assert "older schema" in serve.stderr and "deskgate db upgrade --config" in serve.stderr

    assert main(["db", "status", "--config", str(config)]) == 1
    assert main(["db", "upgrade", "--config", str(config)]) == 0
    assert main(["db", "status", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert f"database upgraded from revision none (made before migrations) to {head_revision()}" in out
    assert f"database revision {head_revision()}; this version needs {head_revision()}: up to date" in out
