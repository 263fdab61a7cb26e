"""history: an index on mask_attempts.expires_at (the supervisors' "active" filter)

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27 15:00:00

Few attempts are live at once; without this index "active" over a million rows walks the
whole newest-first index to prove there are no more (see masking/history.py).
"""
from alembic import op


# revision identifiers, used by Alembic.
revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('mask_attempts', schema=None) as batch_op:
        batch_op.create_index('ix_mask_attempts_expires_at', ['expires_at'], unique=False)


def downgrade():
    with op.batch_alter_table('mask_attempts', schema=None) as batch_op:
        batch_op.drop_index('ix_mask_attempts_expires_at')
