"""api_accounts.reads_for_id: the read-write account whose maskings a read-only account reads

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28 05:00:00

Before this, maskings belonged only to the account that made them, so a read-only account
(which makes none) could get and list nothing. Existing read-only accounts keep reading nothing
until an admin makes a new one that reads for an account.
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('api_accounts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('reads_for_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_api_accounts_reads_for_id_api_accounts'), 'api_accounts',
                                    ['reads_for_id'], ['id'])


def downgrade():
    with op.batch_alter_table('api_accounts', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_api_accounts_reads_for_id_api_accounts'), type_='foreignkey')
        batch_op.drop_column('reads_for_id')
