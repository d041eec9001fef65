"""ha: controllers' heartbeats and per-node mastership leases

Revision ID: c3a9f1e07d21
Revises: b7e2d41c9a05
Create Date: 2026-12-06 23:30:00
"""
from alembic import op
import sqlalchemy as sa


revision = 'c3a9f1e07d21'
down_revision = 'b7e2d41c9a05'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('controllers',
    sa.Column('id', sa.String(length=128), nullable=False),
    sa.Column('api_url', sa.String(length=255), nullable=False),
    sa.Column('started_at', sa.Float(), nullable=False),
    sa.Column('expires_at', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('masterships',
    sa.Column('node_id', sa.String(length=36), nullable=False),
    sa.Column('holder', sa.String(length=128), nullable=True),
    sa.Column('generation', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('expires_at', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('node_id')
    )


def downgrade():
    op.drop_table('masterships')
    op.drop_table('controllers')
