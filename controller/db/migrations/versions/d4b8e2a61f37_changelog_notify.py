"""changelog: PostgreSQL notifies 'quantum_changelog' at every commit that adds rows

Revision ID: d4b8e2a61f37
Revises: c3a9f1e07d21
Create Date: 2026-12-06 23:58:00
"""
from alembic import op


revision = 'd4b8e2a61f37'
down_revision = 'c3a9f1e07d21'
branch_labels = None
depends_on = None


def upgrade():
    # Other controllers LISTEN (controller/ha/notify.py) and read the log at
    # once instead of at their next poll; the notification is sent at COMMIT.
    if op.get_bind().dialect.name != 'postgresql':
        return
    op.execute("""
        CREATE OR REPLACE FUNCTION quantum_changelog_notify() RETURNS trigger AS $$
        BEGIN
            PERFORM pg_notify('quantum_changelog', '');
            RETURN NULL;
        END $$ LANGUAGE plpgsql""")
    op.execute("""
        CREATE TRIGGER changelog_notify AFTER INSERT ON changelog
        FOR EACH STATEMENT EXECUTE FUNCTION quantum_changelog_notify()""")


def downgrade():
    if op.get_bind().dialect.name != 'postgresql':
        return
    op.execute("DROP TRIGGER IF EXISTS changelog_notify ON changelog")
    op.execute("DROP FUNCTION IF EXISTS quantum_changelog_notify()")
