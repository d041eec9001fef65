"""Alembic environment: run with the connection handed in by Database.upgrade()
or, from the alembic CLI, with the URL in `-x url=...`."""
from alembic import context
from sqlalchemy import create_engine

from controller.db.models import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_online():
    conn = config.attributes.get("connection")
    if conn is not None:
        context.configure(connection=conn, target_metadata=target_metadata,
                          render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    url = context.get_x_argument(as_dictionary=True).get("url") or config.attributes.get("connection_url")
    engine = create_engine(url)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata,
                          render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()


run_migrations_online()
