"""Alembic's environment for deskgate: migrations run on the connection :mod:`gateway.schema` hands over."""

from __future__ import annotations

from alembic import context

from base.db import metadata
from gateway.schema import VERSION_TABLE  # and, with it, every package's tables

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, version_table=VERSION_TABLE,
                  render_as_batch=connection.dialect.name == "sqlite", compare_type=True)
with context.begin_transaction():
    context.run_migrations()
