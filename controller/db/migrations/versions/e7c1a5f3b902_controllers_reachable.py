"""controllers: the nodes whose switches each controller is connected to

Revision ID: e7c1a5f3b902
Revises: d4b8e2a61f37
Create Date: 2026-12-07 00:20:00
"""
from alembic import op
import sqlalchemy as sa


revision = 'e7c1a5f3b902'
down_revision = 'd4b8e2a61f37'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('controllers') as batch:
        batch.add_column(sa.Column('reachable', sa.JSON(), nullable=False, server_default='[]'))


def downgrade():
    with op.batch_alter_table('controllers') as batch:
        batch.drop_column('reachable')
