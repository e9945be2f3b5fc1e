"""Alembic environment: run the migrations on the connection ``db.migrate`` hands over.

``migrate`` holds the migration lock and the transaction on that connection, so this file
neither connects nor commits. To write the next revision, run ``command.revision(config,
autogenerate=True)`` with a connection in ``config.attributes`` the same way.
"""

from alembic import context

from services.gateway.users import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError(
        "the gateway's migrations run through services.gateway.db.migrate(database_url), "
        "which passes a locked connection; the alembic command line is not set up"
    )

context.configure(connection=connection, target_metadata=Base.metadata)
with context.begin_transaction():
    context.run_migrations()
