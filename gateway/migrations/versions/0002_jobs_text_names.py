"""Recorder jobs, legal holds and tombstones, terminal screen text, display names.

Tables added since the baseline: ``jobs`` (recorder work any node can claim), ``recording_holds``
and ``recording_tombstones`` (retention), ``recording_text`` (what appeared on a terminal
recording's screen, for search); nullable ``display_name`` columns on ``recordings`` and
``live_sessions``. A database that ``Store.open`` already gave some of them (a test or an
unreleased build) keeps what it has.

Revision ID: 0002_jobs_text_names
Revises: 0001_baseline
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import base.db

revision = "0002_jobs_text_names"
down_revision = "0001_baseline"
branch_labels = None
depends_on = None

NEW_TABLES = ("jobs", "recording_holds", "recording_tombstones", "recording_text")
DISPLAY_NAME_TABLES = ("recordings", "live_sessions")


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    if not any(inspector.has_table(name) for name in NEW_TABLES):
        _create_tables()
    for table in DISPLAY_NAME_TABLES:
        if "display_name" not in {column["name"] for column in inspector.get_columns(table)}:
            op.add_column(table, sa.Column("display_name", sa.String(length=255), nullable=True))


def _create_tables() -> None:
    op.create_table('jobs',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('recording_id', sa.String(length=32), nullable=False),
    sa.Column('node', sa.String(length=255), nullable=True),
    sa.Column('lease_until', sa.Float(), nullable=False),
    sa.Column('attempts', sa.Integer(), server_default='0', nullable=False),
    sa.Column('created', base.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_jobs_kind_recording', 'jobs', ['kind', 'recording_id'], unique=True)
    op.create_index('ix_jobs_lease', 'jobs', ['lease_until'], unique=False)
    op.create_table('recording_holds',
    sa.Column('recording_id', sa.String(length=32), nullable=False),
    sa.Column('by', sa.String(length=255), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('since', base.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('recording_id')
    )
    op.create_table('recording_tombstones',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('user', sa.String(length=255), nullable=False),
    sa.Column('target', sa.String(length=255), nullable=False),
    sa.Column('started', base.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('deleted', base.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('recording_text',
    sa.Column('recording_id', sa.String(length=32), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['recording_id'], ['recordings.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('recording_id')
    )


def downgrade() -> None:
    for table in DISPLAY_NAME_TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("display_name")
    for name in reversed(NEW_TABLES):
        op.drop_table(name)
