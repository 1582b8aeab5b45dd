"""The blind index of sealed screen text.

Table ``text_tokens``: keyed tokens of each minute of a recording's screen text and of its terminal text, which is now stored
sealed (recorder.text_index). Rows written before stay in clear until a node with the keys seals and
indexes them (recorder.screen_search.ScreenTexts.seal_clear_rows, at start-up of the screen-text jobs).

Revision ID: 0004_text_tokens
Revises: 0003_screen_text
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_text_tokens"
down_revision = "0003_screen_text"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('text_tokens',
    sa.Column('recording_id', sa.String(length=32), nullable=False),
    sa.Column('origin', sa.String(length=8), nullable=False),
    sa.Column('bucket', sa.Integer(), nullable=False),
    sa.Column('token', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['recording_id'], ['recordings.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('recording_id', 'origin', 'bucket', 'token'),
    sqlite_with_rowid=False
    )
    with op.batch_alter_table('text_tokens', schema=None) as batch_op:
        batch_op.create_index('ix_text_tokens_token', ['token', 'recording_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('text_tokens', schema=None) as batch_op:
        batch_op.drop_index('ix_text_tokens_token')

    op.drop_table('text_tokens')
