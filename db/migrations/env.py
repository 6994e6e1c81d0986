"""Alembic environment: the database comes from db.session, the metadata from db.models."""

from alembic import context

from db.models import Base, include_name
from db.session import get_engine

target_metadata = Base.metadata


def run_migrations_online() -> None:
    connectable = context.config.attributes.get("connection")
    if connectable is not None:  # called from db.upgrade with an open connection
        context.configure(connection=connectable, target_metadata=target_metadata, include_name=include_name)
        with context.begin_transaction():
            context.run_migrations()
        return
    with get_engine().connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata, include_name=include_name)
        with context.begin_transaction():
            context.run_migrations()


run_migrations_online()
