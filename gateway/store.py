"""The gateway's database: SQLAlchemy Core over an async driver, SQLite by default, PostgreSQL for many nodes.

Every table is defined once, here, on :data:`metadata`; :meth:`Store.open` creates the
missing ones. Times are stored as UTC (:class:`UTCDateTime`) and come back timezone-aware
from either database. SQLite runs in WAL mode with a busy timeout, and SQLAlchemy, not the
``sqlite3`` module, emits ``BEGIN`` so that transactions mean what they say (the module's
legacy mode would run SELECTs outside the transaction).

Appends that must see the latest row and add the next one atomically, across processes and
nodes (the audit chain), run in :meth:`Store.serialized`: ``BEGIN IMMEDIATE`` on SQLite (the
database's write lock), a transaction-scoped advisory lock on PostgreSQL.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    event,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection as SyncConnection
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.sql.dml import Insert
from sqlalchemy.types import TypeDecorator

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

#: One row per finished (or recovered) recording: the index behind search.
recordings = Table(
    "recordings",
    metadata,
    Column("id", String(32), primary_key=True),  # the session id, see recorder.journal.SESSION_ID_RE
    Column("user", String(255), nullable=False),
    Column("source", String(64), nullable=False),
    Column("target", String(255), nullable=False),
    Column("protocol", String(16), nullable=False),
    Column("started", UTCDateTime, nullable=False),
    Column("ended", UTCDateTime, nullable=True),  # None: the journal has no END record (yet)
    Column("duration", Float, nullable=False),
    Column("end_reason", Text, nullable=True),
    Column("bytes", BigInteger, nullable=False),
    Column("keys", Integer, nullable=False),
    Column("clicks", Integer, nullable=False),
    Column("path", Text, nullable=False),
    Column("activity", Text, nullable=False),  # JSON [[bucket_start_s, keys, clicks], ...], non-empty buckets
    Column("sha256", String(64), nullable=True),
    Column("video_state", String(8), nullable=False, server_default="none"),
    Column("video_path", Text, nullable=True),
    Column("node", String(255), nullable=False),
    Index("ix_recordings_started", "started"),
    Index("ix_recordings_user_started", "user", "started"),
    Index("ix_recordings_target_started", "target", "started"),
)

#: The EVENT records of each recording, for the player's timeline.
recording_events = Table(
    "recording_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("recording_id", String(32), ForeignKey("recordings.id", ondelete="CASCADE"), nullable=False),
    Column("t", Float, nullable=False),  # seconds since the recording started
    Column("type", String(64), nullable=False),
    Column("detail", Text, nullable=False),  # JSON object: the event's other fields
    Index("ix_recording_events_recording", "recording_id", "t"),
)

#: The audit log, each row chained to the previous one by hash (see gateway.audit).
audit_events = Table(
    "audit_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("time", UTCDateTime, nullable=False),
    Column("user", String(255), nullable=True),
    Column("source", String(64), nullable=True),
    Column("action", String(64), nullable=False),
    Column("target", String(255), nullable=True),
    Column("outcome", String(32), nullable=False),
    Column("reason", Text, nullable=True),
    Column("detail", Text, nullable=False),  # canonical JSON object
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    Index("ix_audit_events_time", "time"),
    Index("ix_audit_events_user_time", "user", "time"),
)


#: Web sessions, by the SHA-256 of their cookie id (a copy of the table lets nobody in); see auth.websession.
web_sessions = Table(
    "web_sessions",
    metadata,
    Column("id_hash", String(64), primary_key=True),
    Column("username", String(255), nullable=False),
    Column("identity", Text, nullable=False),  # JSON {"groups", "admin", "backend"}
    Column("source", String(64), nullable=False),
    Column("created", UTCDateTime, nullable=False),
    Column("last_seen", UTCDateTime, nullable=False),
    Column("ended", UTCDateTime, nullable=True),  # set by logout, user disable, admin action
    Column("end_reason", Text, nullable=True),
    Index("ix_web_sessions_username", "username"),
    Index("ix_web_sessions_last_seen", "last_seen"),
)

#: TOTP secrets, sealed (AES-256-GCM, key from auth.totp.secret_key_file); see auth.totp_store.
totp_secrets = Table(
    "totp_secrets",
    metadata,
    Column("username", String(255), primary_key=True),
    Column("secret", Text, nullable=False),
    Column("enrolled", UTCDateTime, nullable=False),
)

#: The last TOTP time step accepted per user: a code is usable once, on every node.
totp_used_steps = Table(
    "totp_used_steps",
    metadata,
    Column("username", String(255), primary_key=True),
    Column("last_step", BigInteger, nullable=False),
)

#: Enrollments started at a first login and not yet confirmed with a code.
totp_enrollments = Table(
    "totp_enrollments",
    metadata,
    Column("id_hash", String(64), primary_key=True),
    Column("username", String(255), nullable=False),
    Column("identity", Text, nullable=False),  # JSON, as in web_sessions
    Column("source", String(64), nullable=False),
    Column("secret", Text, nullable=False),  # sealed, as in totp_secrets
    Column("created", UTCDateTime, nullable=False),
    Column("failures", Integer, nullable=False, server_default="0"),
    Index("ix_totp_enrollments_created", "created"),
)

#: Failed logins, one row per failure and scope ("user", "source", "user_source"); see auth.ratelimit.
auth_failures = Table(
    "auth_failures",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("scope", String(16), nullable=False),
    Column("key", String(320), nullable=False),
    Column("time", UTCDateTime, nullable=False),
    Index("ix_auth_failures_scope_key_time", "scope", "key", "time"),
    Index("ix_auth_failures_time", "time"),
)

#: Networks each user recently logged in from: exempt from the per-user lock (see auth.ratelimit).
auth_known_sources = Table(
    "auth_known_sources",
    metadata,
    Column("username", String(255), primary_key=True),
    Column("network", String(64), primary_key=True),
    Column("last_success", UTCDateTime, nullable=False),
)

#: Accounts an administrator disabled (any backend); see auth.accounts.
disabled_accounts = Table(
    "disabled_accounts",
    metadata,
    Column("username", String(255), primary_key=True),
    Column("since", UTCDateTime, nullable=False),
    Column("by", String(255), nullable=False),
    Column("reason", Text, nullable=True),
)


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
    async def open(cls, url: str) -> Store:
        """Connect to ``url`` (``storage.database``) and create the tables that are missing."""
        async_url = make_url(async_database_url(url))
        database = async_url.database
        if async_url.get_backend_name() == "sqlite" and database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(async_url)
        if engine.dialect.name == "sqlite":
            _take_over_sqlite_transactions(engine)
        store = cls(engine)
        try:
            # Serialized: replicas starting together would otherwise race to CREATE the same table.
            async with store.serialized("deskgate.schema") as connection:
                await connection.run_sync(metadata.create_all)
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


def isoformat_utc(moment: datetime) -> str:
    """``2026-11-25T08:00:00.123456Z``: the journal's spelling of a UTC time."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str, *, end_of_day: bool = False) -> datetime:
    """An ISO-8601 date or time (UTC unless it says otherwise); raises ValueError with a hint.

    A bare date is the start of that day, or with ``end_of_day`` the start of the next one,
    so that ``until=2026-11-25`` includes the whole 25th.
    """
    text = text.strip()
    try:
        moment = datetime.fromisoformat(text)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        if end_of_day and _is_bare_date(text):
            moment += timedelta(days=1)
        return moment.astimezone(UTC)
    except (ValueError, OverflowError):  # OverflowError: a date at the end of the calendar, moved past it
        raise ValueError(f"{text!r} is not an ISO-8601 date or time "
                         "(e.g. 2026-11-25 or 2026-11-25T08:00:00Z)") from None


def _is_bare_date(text: str) -> bool:
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return True
