"""The gateway's Postgres: engines and schema migrations (Alembic, run from code).

Every gateway process calls ``migrate(url)`` at start. Processes starting together serialise
on a Postgres advisory lock, so exactly one applies a new revision and the others then find
the schema at head. The lock is taken before Alembic runs, which also serialises threads of one
process: Alembic keeps the running migration's context in module globals.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, make_url, text
from sqlalchemy.pool import NullPool

MIGRATIONS = Path(__file__).resolve().parent / "migrations"

# Any fixed bigint no other advisory lock on this database uses: "gwmigrat" read as one.
MIGRATION_LOCK_ID = int.from_bytes(b"gwmigrat", "big")


def sqlalchemy_url(database_url: str) -> str:
    """Return ``database_url`` naming the psycopg2 driver (``postgresql://`` is accepted)."""
    url = make_url(database_url)
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg2")
    if url.drivername != "postgresql+psycopg2":
        raise ValueError(f"expected a postgresql:// URL, got the {url.drivername!r} driver")
    return url.render_as_string(hide_password=False)


def make_engine(database_url: str) -> Engine:
    """Return a pooled engine for request handlers (FastAPI runs them on its threadpool).

    Connections are checked before use (Postgres restarts drop them) and a request waits at
    most ``pool_timeout`` for one: under overload it fails rather than queueing unboundedly.
    """
    return create_engine(
        sqlalchemy_url(database_url),
        pool_pre_ping=True,
        pool_size=10,
        max_overflow=10,
        pool_timeout=10,
        connect_args={"connect_timeout": 5},
    )


def migrate(database_url: str) -> None:
    """Upgrade the database to the newest revision; a no-op when it is there already."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    engine = create_engine(sqlalchemy_url(database_url), poolclass=NullPool)
    try:
        # One transaction: the lock is released at its commit, after the new version row,
        # and Postgres DDL is transactional, so a failed upgrade leaves nothing half-done.
        with engine.begin() as connection:
            connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": MIGRATION_LOCK_ID})
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
    finally:
        engine.dispose()
