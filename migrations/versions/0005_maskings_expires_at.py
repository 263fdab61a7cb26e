"""maskings: an index on expires_at (the supervisors' "live" filter of All masks)

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28 10:00:00

Few maskings are live at once; without this index "live" over 100 000 maskings walks the
whole table to prove there are no more (see masking/service_report.py).
"""
from alembic import op


# revision identifiers, used by Alembic.
revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('maskings', schema=None) as batch_op:
        batch_op.create_index('ix_maskings_expires_at', ['expires_at'], unique=False)


def downgrade():
    with op.batch_alter_table('maskings', schema=None) as batch_op:
        batch_op.drop_index('ix_maskings_expires_at')
