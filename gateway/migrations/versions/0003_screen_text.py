"""Text read off desktop recordings (OCR) and the personal data found in recordings.

Tables ``screen_text`` (lines of text with their time and box, for search by what was on screen) and
``pii_findings`` (kind, time, region and keyed hash of personal data found on screen or typed).

Revision ID: 0003_screen_text
Revises: 0002_jobs_text_names
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_screen_text"
down_revision = "0002_jobs_text_names"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('pii_findings',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('recording_id', sa.String(length=32), nullable=False),
    sa.Column('t', sa.Float(), nullable=False),
    sa.Column('until', sa.Float(), nullable=False),
    sa.Column('x', sa.Integer(), nullable=True),
    sa.Column('y', sa.Integer(), nullable=True),
    sa.Column('width', sa.Integer(), nullable=True),
    sa.Column('height', sa.Integer(), nullable=True),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('digest', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['recording_id'], ['recordings.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('pii_findings', schema=None) as batch_op:
        batch_op.create_index('ix_pii_findings_digest', ['digest'], unique=False)
        batch_op.create_index('ix_pii_findings_recording', ['recording_id', 't'], unique=False)

    op.create_table('screen_text',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('recording_id', sa.String(length=32), nullable=False),
    sa.Column('t', sa.Float(), nullable=False),
    sa.Column('x', sa.Integer(), nullable=True),
    sa.Column('y', sa.Integer(), nullable=True),
    sa.Column('width', sa.Integer(), nullable=True),
    sa.Column('height', sa.Integer(), nullable=True),
    sa.Column('text', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['recording_id'], ['recordings.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('screen_text', schema=None) as batch_op:
        batch_op.create_index('ix_screen_text_recording', ['recording_id', 't'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('screen_text', schema=None) as batch_op:
        batch_op.drop_index('ix_screen_text_recording')

    op.drop_table('screen_text')
    with op.batch_alter_table('pii_findings', schema=None) as batch_op:
        batch_op.drop_index('ix_pii_findings_recording')
        batch_op.drop_index('ix_pii_findings_digest')

    op.drop_table('pii_findings')
