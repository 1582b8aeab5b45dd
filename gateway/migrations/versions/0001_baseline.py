"""Baseline: the schema of the last release before migrations, made whole.

A database that release (or an older one) created has deskgate's tables but no revision: this
migration creates the tables it lacks, adds the columns and indexes its tables lack (every
column added since was nullable or has a server default), and so brings it to this schema. An
empty database gets every table. The tables are spelled out here, frozen: later changes to the
code's tables belong in later migrations (see ``gateway/schema.py``).

Revision ID: 0001_baseline
Revises:
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import base.db

revision = "0001_baseline"
down_revision = None
branch_labels = None
depends_on = None

BASELINE = sa.MetaData()

sa.Table(
    'audit_events',
    BASELINE,
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('time', base.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('user', sa.String(length=255), nullable=True),
    sa.Column('source', sa.String(length=64), nullable=True),
    sa.Column('action', sa.String(length=64), nullable=False),
    sa.Column('target', sa.String(length=255), nullable=True),
    sa.Column('outcome', sa.String(length=32), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('detail', sa.Text(), nullable=False),
    sa.Column('prev_hash', sa.String(length=64), nullable=False),
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.Index('ix_audit_events_time', 'time'),
    sa.Index('ix_audit_events_user_time', 'user', 'time'),
)

sa.Table(
    'auth_failures',
    BASELINE,
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('scope', sa.String(length=16), nullable=False),
    sa.Column('key', sa.String(length=320), nullable=False),
    sa.Column('time', base.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.Index('ix_auth_failures_scope_key_time', 'scope', 'key', 'time'),
    sa.Index('ix_auth_failures_time', 'time'),
)

sa.Table(
    'auth_known_sources',
    BASELINE,
    sa.Column('username', sa.String(length=255), nullable=False),
    sa.Column('network', sa.String(length=64), nullable=False),
    sa.Column('last_success', base.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('username', 'network'),
)

sa.Table(
    'disabled_accounts',
    BASELINE,
    sa.Column('username', sa.String(length=255), nullable=False),
    sa.Column('since', base.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('by', sa.String(length=255), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('username'),
)

sa.Table(
    'live_session_events',
    BASELINE,
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('session_id', sa.String(length=32), nullable=False),
    sa.Column('type', sa.String(length=32), nullable=False),
    sa.Column('payload', sa.Text(), nullable=False),
    sa.Column('posted', base.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.Index('ix_live_session_events_session_id', 'session_id'),
)

sa.Table(
    'live_sessions',
    BASELINE,
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('username', sa.String(length=255), nullable=False),
    sa.Column('user_groups', sa.Text(), nullable=False),
    sa.Column('source', sa.String(length=64), nullable=False),
    sa.Column('target', sa.String(length=255), nullable=False),
    sa.Column('protocol', sa.String(length=16), nullable=False),
    sa.Column('node', sa.String(length=255), nullable=False),
    sa.Column('started', base.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_input', base.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('heartbeat', base.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('viewers', sa.Integer(), server_default='0', nullable=False),
    sa.Column('end_reason', sa.Text(), nullable=True),
    sa.Column('end_by', sa.String(length=255), nullable=True),
    sa.Column('end_requested', base.db.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.Index('ix_live_sessions_heartbeat', 'heartbeat'),
)

sa.Table(
    'notices',
    BASELINE,
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('username', sa.String(length=255), nullable=False),
    sa.Column('type', sa.String(length=32), nullable=False),
    sa.Column('payload', sa.Text(), nullable=False),
    sa.Column('posted', base.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires', base.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.Index('ix_notices_expires', 'expires'),
    sa.Index('ix_notices_username_posted', 'username', 'posted'),
)

sa.Table(
    'recordings',
    BASELINE,
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('user', sa.String(length=255), nullable=False),
    sa.Column('source', sa.String(length=64), nullable=False),
    sa.Column('target', sa.String(length=255), nullable=False),
    sa.Column('protocol', sa.String(length=16), nullable=False),
    sa.Column('started', base.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('ended', base.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('duration', sa.Float(), nullable=False),
    sa.Column('end_reason', sa.Text(), nullable=True),
    sa.Column('bytes', sa.BigInteger(), nullable=False),
    sa.Column('keys', sa.Integer(), nullable=False),
    sa.Column('clicks', sa.Integer(), nullable=False),
    sa.Column('path', sa.Text(), nullable=False),
    sa.Column('activity', sa.Text(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=True),
    sa.Column('video_state', sa.String(length=8), server_default='none', nullable=False),
    sa.Column('video_path', sa.Text(), nullable=True),
    sa.Column('node', sa.String(length=255), nullable=False),
    sa.Column('user_groups', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.Index('ix_recordings_started', 'started'),
    sa.Index('ix_recordings_target_started', 'target', 'started'),
    sa.Index('ix_recordings_user_started', 'user', 'started'),
)

sa.Table(
    'totp_enrollments',
    BASELINE,
    sa.Column('id_hash', sa.String(length=64), nullable=False),
    sa.Column('username', sa.String(length=255), nullable=False),
    sa.Column('identity', sa.Text(), nullable=False),
    sa.Column('source', sa.String(length=64), nullable=False),
    sa.Column('secret', sa.Text(), nullable=False),
    sa.Column('created', base.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('failures', sa.Integer(), server_default='0', nullable=False),
    sa.PrimaryKeyConstraint('id_hash'),
    sa.Index('ix_totp_enrollments_created', 'created'),
)

sa.Table(
    'totp_secrets',
    BASELINE,
    sa.Column('username', sa.String(length=255), nullable=False),
    sa.Column('secret', sa.Text(), nullable=False),
    sa.Column('enrolled', base.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('username'),
)

sa.Table(
    'totp_used_steps',
    BASELINE,
    sa.Column('username', sa.String(length=255), nullable=False),
    sa.Column('last_step', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('username'),
)

sa.Table(
    'web_sessions',
    BASELINE,
    sa.Column('id_hash', sa.String(length=64), nullable=False),
    sa.Column('username', sa.String(length=255), nullable=False),
    sa.Column('identity', sa.Text(), nullable=False),
    sa.Column('source', sa.String(length=64), nullable=False),
    sa.Column('created', base.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_seen', base.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('ended', base.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('end_reason', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id_hash'),
    sa.Index('ix_web_sessions_last_seen', 'last_seen'),
    sa.Index('ix_web_sessions_username', 'username'),
)

sa.Table(
    'recording_bookmarks',
    BASELINE,
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('recording_id', sa.String(length=32), nullable=False),
    sa.Column('owner', sa.String(length=255), nullable=False),
    sa.Column('t', sa.Float(), nullable=False),
    sa.Column('note', sa.Text(), nullable=False),
    sa.Column('created', base.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['recording_id'], ['recordings.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.Index('ix_recording_bookmarks_owner', 'owner', 'created'),
    sa.Index('ix_recording_bookmarks_recording', 'recording_id', 't'),
)

sa.Table(
    'recording_clips',
    BASELINE,
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('recording_id', sa.String(length=32), nullable=False),
    sa.Column('owner', sa.String(length=255), nullable=False),
    sa.Column('clip_start', sa.Float(), nullable=False),
    sa.Column('clip_end', sa.Float(), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('progress', sa.Float(), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('path', sa.Text(), nullable=True),
    sa.Column('node', sa.String(length=255), nullable=False),
    sa.Column('created', base.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['recording_id'], ['recordings.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.Index('ix_recording_clips_owner', 'owner', 'created'),
    sa.Index('ix_recording_clips_recording', 'recording_id', 'created'),
)

sa.Table(
    'recording_events',
    BASELINE,
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('recording_id', sa.String(length=32), nullable=False),
    sa.Column('t', sa.Float(), nullable=False),
    sa.Column('type', sa.String(length=64), nullable=False),
    sa.Column('detail', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['recording_id'], ['recordings.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.Index('ix_recording_events_recording', 'recording_id', 't'),
)

sa.Table(
    'recording_sources',
    BASELINE,
    sa.Column('recording_id', sa.String(length=32), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('address', sa.String(length=32).with_variant(sa.String(length=32, collation='C'), 'postgresql'), nullable=False),
    sa.ForeignKeyConstraint(['recording_id'], ['recordings.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('recording_id'),
    sa.Index('ix_recording_sources_address', 'version', 'address'),
)


def upgrade() -> None:
    bind = op.get_bind()
    inspector = sa.inspect(bind)
    for table in BASELINE.sorted_tables:
        if not inspector.has_table(table.name):
            table.create(bind)
            continue
        present = {column["name"] for column in inspector.get_columns(table.name)}
        for column in table.columns:
            if column.name not in present:
                default = str(column.server_default.arg) if isinstance(column.server_default, sa.DefaultClause) else None
                assert column.nullable or default is not None, f"{table.name}.{column.name}"
                op.add_column(table.name, sa.Column(column.name, column.type, nullable=column.nullable,
                                                    server_default=default))
        indexes = {index["name"] for index in inspector.get_indexes(table.name)}
        for index in table.indexes:
            if index.name not in indexes:
                index.create(bind)


def downgrade() -> None:
    for table in reversed(BASELINE.sorted_tables):
        op.drop_table(table.name)
