"""The database schema's version: Alembic migrations (``gateway/migrations``), ``deskgate db upgrade``, and the
check that keeps ``serve`` off a database older or newer than its code.

:func:`open_current_store` is how the gateway and its commands open ``storage.database``:

* an empty database gets every table of :data:`base.db.metadata` and is stamped with the head revision;
* one already at the head revision opens;
* one whose tables match the metadata exactly but carry no revision (made by :meth:`Store.open`, as tests
  do) is stamped with the head and opens;
* any other is refused with :class:`SchemaOutOfDate`, which names the command to run.

:func:`upgrade` runs the migrations up to the head; the first (``0001_baseline``) brings a database of the
release before migrations to today's schema: it creates the missing tables and adds the missing columns.
:func:`schema_differences` compares the migrated schema with the metadata (what ``alembic check`` does).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config as AlembicConfig
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect
from sqlalchemy.engine import Connection, make_url

import auth.tables
import gateway.audit
import gateway.notices
import gateway.session_directory
import recorder.tables
from base.db import Store, metadata
from gateway.errors import GatewayError

#: Every package whose tables are on :data:`metadata` (imported for that).
SCHEMA_MODULES = (auth.tables, recorder.tables, gateway.audit, gateway.notices, gateway.session_directory)
MIGRATIONS = Path(__file__).parent / "migrations"
VERSION_TABLE = "alembic_version"
_SCHEMA_LOCK = "deskgate.schema"
# Alembic says at level info which dialect it uses and each step it runs; db upgrade says what it did itself.
logging.getLogger("alembic.runtime.migration").setLevel(logging.WARNING)


class SchemaOutOfDate(GatewayError):
    """The database's schema is not the one this version of deskgate runs on."""


def alembic_config(connection: Connection | None = None) -> AlembicConfig:
    """Alembic's configuration for deskgate's migrations, on ``connection`` when given (see migrations/env.py)."""
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "gateway/migrations has no revision"
    return head


def _include(name: str | None, type_: str, parent_names: Any) -> bool:
    return not (type_ == "table" and name == VERSION_TABLE)


def schema_differences(connection: Connection) -> list[Any]:
    """What would have to change in the database for it to match :data:`metadata` (empty: it matches)."""
    context = MigrationContext.configure(connection, opts={"compare_type": True, "include_name": _include})
    return list(compare_metadata(context, metadata))


def _current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def _prepare(connection: Connection, database: str) -> None:
    """Create and stamp an empty database, stamp an unversioned current one, or refuse; see the module."""
    head = head_revision()
    revision = _current_revision(connection)
    if revision == head:
        return
    tables = set(inspect(connection).get_table_names()) - {VERSION_TABLE}
    if revision is None and not tables:
        metadata.create_all(connection)
        command.stamp(alembic_config(connection), head)
        return
    if revision is None and not schema_differences(connection):
        command.stamp(alembic_config(connection), head)
        return
    known = {script.revision for script in ScriptDirectory.from_config(alembic_config()).walk_revisions()}
    if revision is not None and revision not in known:
        raise SchemaOutOfDate(f"the database {database} has schema revision {revision}, which is newer than this "
                              "version of deskgate knows; run the deskgate version that upgraded it")
    found = revision or "none: made before migrations"
    raise SchemaOutOfDate(f"the database {database} has an older schema (revision {found}) than this version of "
                          f"deskgate needs ({head}); back it up, then run: deskgate db upgrade --config <your "
                          "deskgate.yaml>")


async def open_current_store(url: str) -> Store:
    """Open ``url`` for the gateway: created and stamped when empty; refused (SchemaOutOfDate) when out of date."""
    store = await Store.open(url, create=False)
    try:
        async with store.serialized(_SCHEMA_LOCK) as connection:
            await connection.run_sync(_prepare, make_url(url).render_as_string(hide_password=True))
    except BaseException:
        await store.close()
        raise
    return store


async def revision_of(url: str) -> str | None:
    """The schema revision ``url`` is at (None: empty, or made before migrations)."""
    store = await Store.open(url, create=False)
    try:
        async with store.read() as connection:
            return await connection.run_sync(_current_revision)
    finally:
        await store.close()


async def upgrade(url: str) -> tuple[str | None, str]:
    """Migrate ``url`` to the head revision; returns the revisions before and after."""
    store = await Store.open(url, create=False)
    try:
        async with store.serialized(_SCHEMA_LOCK) as connection:
            before = await connection.run_sync(_current_revision)
            await connection.run_sync(lambda sync: command.upgrade(alembic_config(sync), "head"))
            after = await connection.run_sync(_current_revision)
    finally:
        await store.close()
    assert after is not None
    return before, after
