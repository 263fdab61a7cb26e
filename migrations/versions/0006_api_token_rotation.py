"""api_accounts.previous_token_hash, previous_token_until: token rotation with a grace period

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28 12:00:00

A rotated token may keep working for a while (at most 7 days) so that an integrator can deploy
its successor without downtime. Existing accounts have no previous token: both columns are NULL.
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('api_accounts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('previous_token_hash', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('previous_token_until', sa.DateTime(), nullable=True))


def downgrade():
    with op.batch_alter_table('api_accounts', schema=None) as batch_op:
        batch_op.drop_column('previous_token_until')
        batch_op.drop_column('previous_token_hash')
