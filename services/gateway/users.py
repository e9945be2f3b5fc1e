"""Users and their API keys in Postgres: the models and a small synchronous store.

The schema itself is created by the Alembic migrations next to this module (``db.migrate``);
these models must match them, which ``tests/integration/gateway/test_users.py`` checks.
"""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any, cast

from psycopg2 import errors as pg_errors
from sqlalchemy import (
    BigInteger,
    DateTime,
    Engine,
    ForeignKey,
    Identity,
    MetaData,
    String,
    func,
    select,
    update,
)
from sqlalchemy.engine import CursorResult
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker, undefer

from services.gateway.db import make_engine

MAX_EMAIL_LENGTH = 254  # RFC 5321's limit on a forward path
MAX_LABEL_LENGTH = 64
API_KEY_LENGTH = 64  # secrets.token_urlsafe(48): 384 random bits as 64 url-safe characters

# Fixed constraint names, so the hand-written migration and the models name them alike.
NAMING = {
    "pk": "pk_%(table_name)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ix": "ix_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class User(Base):
    __tablename__ = "users"

    # Small positive ids: the exchange routes a user's messages by ``user_id % USER_PARTITIONS``.
    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    email: Mapped[str] = mapped_column(String(MAX_EMAIL_LENGTH), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id"), index=True)
    key: Mapped[str] = mapped_column(String(API_KEY_LENGTH), unique=True)
    # Stored as issued: verifying an HMAC signature needs the secret itself, so unlike a
    # password it cannot be hashed; every exchange keeps API secrets this way. Deferred with
    # raiseload, so only ``find_active_api_key`` ever reads it back from the database.
    secret: Mapped[str] = mapped_column(
        String(API_KEY_LENGTH), deferred=True, deferred_raiseload=True
    )
    label: Mapped[str] = mapped_column(String(MAX_LABEL_LENGTH))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    def public(self) -> dict[str, object]:
        """Return what the key's owner may be shown again: everything but the secret."""
        return {
            "id": self.id,
            "key": self.key,
            "label": self.label,
            "created_at": self.created_at,
            "revoked_at": self.revoked_at,
        }


class EmailTaken(Exception):
    """A user with this email (compared case-insensitively) already exists."""


def normalise_email(email: str) -> str:
    """Return the stored form of an email: stripped and lower-cased, so case never matters."""
    return email.strip().lower()


class UserStore:
    """Users and API keys; each call is one short transaction and returns detached objects."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    @classmethod
    def from_url(cls, database_url: str) -> UserStore:
        """Return a store on a pooled engine for ``database_url`` (``postgresql://`` is fine)."""
        return cls(make_engine(database_url))

    def close(self) -> None:
        """Close the pooled connections."""
        self._engine.dispose()

    def create_user(self, email: str, password_hash: str) -> User:
        """Insert a user; raise ``EmailTaken`` when the email is in use (the unique index decides,
        so two concurrent sign-ups with one email cannot both succeed)."""
        user = User(email=normalise_email(email), password_hash=password_hash)
        try:
            with self._sessions.begin() as session:
                session.add(user)
        except IntegrityError as error:
            if _violates(error, "uq_users_email"):
                raise EmailTaken(f"email {user.email!r} is already registered") from error
            raise
        return user

    def find_by_email(self, email: str) -> User | None:
        with self._sessions() as session:
            return session.scalars(
                select(User).where(User.email == normalise_email(email))
            ).one_or_none()

    def get(self, user_id: int) -> User | None:
        with self._sessions() as session:
            return session.get(User, user_id)

    def create_api_key(self, user_id: int, label: str) -> tuple[ApiKey, str]:
        """Create a key for the user; return it and its secret, which is never shown again."""
        if len(label) > MAX_LABEL_LENGTH:
            raise ValueError(f"label is {len(label)} characters, at most {MAX_LABEL_LENGTH}")
        secret = secrets.token_urlsafe(48)
        api_key = ApiKey(user_id=user_id, key=secrets.token_urlsafe(48), secret=secret, label=label)
        with self._sessions.begin() as session:
            session.add(api_key)
        return api_key, secret

    def list_api_keys(self, user_id: int) -> list[ApiKey]:
        """Return the user's keys, revoked ones included, oldest first, secrets not loaded."""
        with self._sessions() as session:
            return list(
                session.scalars(select(ApiKey).where(ApiKey.user_id == user_id).order_by(ApiKey.id))
            )

    def revoke_api_key(self, user_id: int, key_id: int) -> bool:
        """Revoke one of the user's keys; False when no such key belongs to this user.

        Revoking a revoked key succeeds and keeps the first revocation time.
        """
        with self._sessions.begin() as session:
            # an UPDATE's result is a CursorResult (the one that counts rows); execute() is
            # typed with the general Result
            result = cast(
                "CursorResult[Any]",
                session.execute(
                    update(ApiKey)
                    .where(ApiKey.id == key_id, ApiKey.user_id == user_id)
                    .values(revoked_at=func.coalesce(ApiKey.revoked_at, func.now()))
                    .execution_options(synchronize_session=False)
                ),
            )
            return result.rowcount == 1

    def find_active_api_key(self, key: str) -> ApiKey | None:
        """Return the unrevoked key with this public id, its secret loaded, or None."""
        with self._sessions() as session:
            return session.scalars(
                select(ApiKey)
                .where(ApiKey.key == key, ApiKey.revoked_at.is_(None))
                .options(undefer(ApiKey.secret))
            ).one_or_none()


def _violates(error: IntegrityError, constraint: str) -> bool:
    """True when ``error`` is a unique violation of the named constraint."""
    return (
        isinstance(error.orig, pg_errors.UniqueViolation)
        and error.orig.diag.constraint_name == constraint
    )
