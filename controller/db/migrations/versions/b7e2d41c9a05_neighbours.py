"""neighbours: the external gateways' MACs resolved by ARP, kept across restarts

Revision ID: b7e2d41c9a05
Revises: 6416db9f9d63
Create Date: 2026-11-21 16:30:00
"""
from alembic import op
import sqlalchemy as sa


revision = 'b7e2d41c9a05'
down_revision = '6416db9f9d63'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('neighbours',
    sa.Column('network_id', sa.String(length=36), nullable=False),
    sa.Column('ip_address', sa.String(length=64), nullable=False),
    sa.Column('mac_address', sa.String(length=32), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['network_id'], ['networks.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('network_id', 'ip_address')
    )


def downgrade():
    op.drop_table('neighbours')
