"""The gateway's database: SQLAlchemy Core over an async driver, SQLite by default, PostgreSQL for many nodes.

Each package defines its own tables on the shared :data:`metadata` (``auth.tables``,
``recorder.tables``, ``gateway.audit``); :meth:`Store.open` creates the missing ones among
those imported so far, and adds to existing tables the columns a newer version defined since
(:func:`add_missing_columns`) — the schema grows by nullable columns, so a database written
by an older version upgrades in place at the next start. Times are stored as UTC (:class:`UTCDateTime`) and come back timezone-aware
from either database. SQLite runs in WAL mode with a busy timeout, and SQLAlchemy, not the
``sqlite3`` module, emits ``BEGIN`` so that transactions mean what they say (the module's
legacy mode would run SELECTs outside the transaction).

Appends that must see the latest row and add the next one atomically, across processes and
nodes (the audit chain), run in :meth:`Store.serialized`: ``BEGIN IMMEDIATE`` on SQLite (the
database's write lock), a transaction-scoped advisory lock on PostgreSQL.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    DateTime,
    Dialect,
    MetaData,
    Table,
    event,
    inspect,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection as SyncConnection
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.schema import CreateColumn
from sqlalchemy.sql.dml import Insert
from sqlalchemy.types import TypeDecorator

log = logging.getLogger(__name__)

SQLITE_BUSY_TIMEOUT_MS = 15_000
_WRITE_LOCK_OPTION = "deskgate_write_lock"

#: The async driver for each database the gateway supports.
DRIVERS = {"sqlite": "aiosqlite", "postgresql": "asyncpg"}


class UTCDateTime(TypeDecorator[datetime]):
    """An aware datetime, stored as UTC; SQLite keeps it as naive text in one sortable format."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"refusing to store the naive datetime {value.isoformat()}; give it a timezone")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


metadata = MetaData()


class SchemaTooOld(Exception):
    """An existing table lacks a column that cannot be added in place (it is NOT NULL without a default)."""


def add_missing_columns(connection: SyncConnection) -> list[str]:
    """Add to every existing table of :data:`metadata` the columns it lacks; returns them as ``table.column``.

    Only columns that old rows can do without are added: nullable ones, or those with a server
    default. Their indexes and constraints are not (a later version needing one creates it
    itself). Any other missing column raises :class:`SchemaTooOld`: the version that defined it
    must bring its own migration.
    """
    inspector = inspect(connection)
    preparer = connection.dialect.identifier_preparer
    added = []
    for table in metadata.sorted_tables:
        if not inspector.has_table(table.name):
            continue
        present = {column["name"] for column in inspector.get_columns(table.name)}
        for column in table.columns:
            if column.name in present:
                continue
            if not column.nullable and column.server_default is None:
                raise SchemaTooOld(f"table {table.name} has no column {column.name}, which this version needs "
                                   "and cannot add by itself (it is NOT NULL); upgrade the database first")
            definition = CreateColumn(column).compile(dialect=connection.dialect)
            connection.execute(text(f"ALTER TABLE {preparer.format_table(table)} ADD COLUMN {definition}"))
            added.append(f"{table.name}.{column.name}")
    return added


def async_database_url(url: str) -> str:
    """``sqlite:///…`` → ``sqlite+aiosqlite:///…``, ``postgresql://…`` → ``postgresql+asyncpg://…``.

    Raises ValueError for another database or a driver the gateway cannot run on asyncio.
    """
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ValueError(f"{url!r} is not a database URL; use sqlite:///PATH or postgresql://HOST/DB") from exc
    backend, driver = parsed.get_backend_name(), parsed.get_driver_name()
    if backend not in DRIVERS:
        raise ValueError(f"database {backend!r} is not supported; use sqlite:///PATH or postgresql://HOST/DB")
    wanted = DRIVERS[backend]
    if "+" in parsed.drivername and driver != wanted:
        raise ValueError(f"database driver {driver!r} is not supported; write {backend}:// (the gateway uses {wanted})")
    return parsed.set(drivername=f"{backend}+{wanted}").render_as_string(hide_password=False)


def _advisory_lock_key(name: str) -> int:
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


class Store:
    """An open database: the async engine, and transactions of the three kinds the gateway needs."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.dialect: str = engine.dialect.name

    @classmethod
    async def open(cls, url: str, create: bool = True) -> Store:
        """Connect to ``url`` (``storage.database``); with ``create``, create the missing tables and add the missing
        columns of the tables imported so far (tests and tools; the gateway checks its schema's version instead,
        see ``gateway.schema``)."""
        async_url = make_url(async_database_url(url))
        database = async_url.database
        if async_url.get_backend_name() == "sqlite" and database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(async_url)
        if engine.dialect.name == "sqlite":
            _take_over_sqlite_transactions(engine)
        store = cls(engine)
        if not create:
            return store
        try:
            # Serialized: replicas starting together would otherwise race to CREATE the same table.
            async with store.serialized("deskgate.schema") as connection:
                await connection.run_sync(metadata.create_all)
                added = await connection.run_sync(add_missing_columns)
            if added:
                log.info("database upgraded: columns added", extra={"ctx": {"columns": ", ".join(added)}})
        except BaseException:
            await engine.dispose()
            raise
        return store

    async def close(self) -> None:
        """Close every pooled connection."""
        await self.engine.dispose()

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A connection for queries; its implicit transaction is rolled back at the end."""
        async with self.engine.connect() as connection:
            yield connection

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        """A transaction, committed when the block ends without an exception."""
        async with self.engine.begin() as connection:
            yield connection

    @asynccontextmanager
    async def serialized(self, name: str) -> AsyncIterator[AsyncConnection]:
        """A transaction that no other one serialized on ``name`` overlaps, in any process or node.

        On SQLite it holds the database's write lock, so it also excludes every other writer.
        """
        async with self.engine.connect() as connection:
            if self.dialect == "sqlite":
                await connection.execution_options(**{_WRITE_LOCK_OPTION: True})
            async with connection.begin():
                if self.dialect == "postgresql":
                    await connection.execute(text("SELECT pg_advisory_xact_lock(:key)"),
                                             {"key": _advisory_lock_key(name)})
                yield connection

    def insert_if_absent(self, table: Table, row: dict[str, Any]) -> Insert:
        """INSERT ``row`` unless a row with the same primary key exists (then nothing; rowcount 0)."""
        return self._dialect_insert(table, row).on_conflict_do_nothing()

    def upsert(self, table: Table, row: dict[str, Any], keep: Sequence[str] = ()) -> Insert:
        """INSERT ``row``, or UPDATE the row with the same primary key, leaving the columns in ``keep``."""
        statement = self._dialect_insert(table, row)
        key = [column.name for column in table.primary_key.columns]
        changes = {name: statement.excluded[name] for name in row if name not in key and name not in keep}
        return statement.on_conflict_do_update(index_elements=key, set_=changes)

    def _dialect_insert(self, table: Table, row: dict[str, Any]) -> sqlite.Insert | postgresql.Insert:
        """An INSERT of the database's own dialect: the one that has ON CONFLICT."""
        return (sqlite.insert if self.dialect == "sqlite" else postgresql.insert)(table).values(row)


def _take_over_sqlite_transactions(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def on_connect(dbapi_connection: Any, connection_record: Any) -> None:
        dbapi_connection.isolation_level = None  # the "begin" hook below emits BEGIN, for every statement kind
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def on_begin(connection: SyncConnection) -> None:
        # IMMEDIATE takes the write lock up front: a deferred transaction that reads and then
        # writes can fail with SQLITE_BUSY without waiting when another writer got in between.
        immediate = connection.get_execution_options().get(_WRITE_LOCK_OPTION, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")
