"""services.gateway.users and db.migrate against a real Postgres, in a database of their own."""

from __future__ import annotations

import re
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import MetaData, create_engine, inspect, make_url, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from services.gateway.db import migrate, sqlalchemy_url
from services.gateway.users import Base, EmailTaken, User, UserStore


@contextmanager
def new_database(server_url: str) -> Iterator[str]:
    """Create an empty database on the fixture's server; drop it afterwards."""
    name = f"gw_{uuid.uuid4().hex}"
    admin = create_engine(
        sqlalchemy_url(server_url), isolation_level="AUTOCOMMIT", poolclass=NullPool
    )
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="module")
def migrated_url(database_url: str) -> Iterator[str]:
    with new_database(database_url) as url:
        migrate(url)
        yield url


@pytest.fixture(scope="module")
def store(migrated_url: str) -> Iterator[UserStore]:
    store = UserStore.from_url(migrated_url)
    yield store
    store.close()


def new_email(domain: str = "example.com") -> str:
    return f"trader-{uuid.uuid4().hex[:12]}@{domain}"


def race(workers: int, task: Callable[[], object]) -> list[object]:
    """Run ``task`` in ``workers`` threads released together; return results or exceptions."""
    barrier = threading.Barrier(workers)

    def run() -> object:
        barrier.wait()
        try:
            return task()
        except Exception as error:
            return error

    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(lambda _: run(), range(workers)))


# --- users ------------------------------------------------------------------------------------


def test_a_user_is_stored_with_a_normalised_email_and_found_in_any_case(
    store: UserStore,
) -> None:
    email = new_email()
    user = store.create_user(f"  {email.upper()} ", "hash")
    assert user.email == email
    assert user.id > 0
    assert user.created_at.tzinfo is not None
    found = store.find_by_email(email.title())
    assert found is not None
    assert (found.id, found.email, found.password_hash) == (user.id, email, "hash")
    got = store.get(user.id)
    assert got is not None and got.email == email


def test_an_email_registered_in_another_case_is_taken(store: UserStore) -> None:
    email = new_email()
    store.create_user(email, "hash")
    with pytest.raises(EmailTaken, match=re.escape(email)):
        store.create_user(email.upper(), "other hash")


def test_concurrent_sign_ups_with_one_email_create_exactly_one_user(store: UserStore) -> None:
    email = new_email()
    results = race(8, lambda: store.create_user(email, "hash"))
    [created] = [r for r in results if not isinstance(r, EmailTaken)]
    assert isinstance(created, User) and created.email == email


def test_unknown_users_are_not_found(store: UserStore) -> None:
    assert store.find_by_email(new_email()) is None
    assert store.get(2**62) is None


# --- API keys ---------------------------------------------------------------------------------


def test_a_new_api_key_shows_its_secret_once_and_is_found_by_its_public_id(
    store: UserStore,
) -> None:
    user = store.create_user(new_email(), "hash")
    api_key, secret = store.create_api_key(user.id, "market maker")
    assert re.fullmatch(r"[A-Za-z0-9_-]{64}", api_key.key)
    assert re.fullmatch(r"[A-Za-z0-9_-]{64}", secret)
    assert secret != api_key.key
    found = store.find_active_api_key(api_key.key)
    assert found is not None
    assert (found.id, found.user_id, found.secret) == (api_key.id, user.id, secret)


def test_listed_api_keys_carry_no_secret(store: UserStore) -> None:
    user = store.create_user(new_email(), "hash")
    first, _ = store.create_api_key(user.id, "one")
    second, secret = store.create_api_key(user.id, "two")
    listed = store.list_api_keys(user.id)
    assert [k.id for k in listed] == [first.id, second.id]
    assert listed[1].public() == {
        "id": second.id,
        "key": second.key,
        "label": "two",
        "created_at": second.created_at,
        "revoked_at": None,
    }
    assert secret not in repr(listed[1].public())
    with pytest.raises(SQLAlchemyError):
        _ = listed[1].secret  # never loaded for a listing


def test_a_label_longer_than_64_characters_is_refused(store: UserStore) -> None:
    user = store.create_user(new_email(), "hash")
    with pytest.raises(ValueError, match="at most 64"):
        store.create_api_key(user.id, "x" * 65)
    api_key, _ = store.create_api_key(user.id, "x" * 64)
    assert api_key.label == "x" * 64


def test_a_revoked_key_is_no_longer_active_but_stays_listed(store: UserStore) -> None:
    user = store.create_user(new_email(), "hash")
    api_key, _ = store.create_api_key(user.id, "bot")
    assert store.revoke_api_key(user.id, api_key.id)
    assert store.find_active_api_key(api_key.key) is None
    [listed] = store.list_api_keys(user.id)
    assert listed.revoked_at is not None
    assert store.revoke_api_key(user.id, api_key.id)  # again: still revoked, same time
    assert store.list_api_keys(user.id)[0].revoked_at == listed.revoked_at


def test_a_user_cannot_revoke_another_users_key(store: UserStore) -> None:
    owner = store.create_user(new_email(), "hash")
    intruder = store.create_user(new_email(), "hash")
    api_key, _ = store.create_api_key(owner.id, "bot")
    assert not store.revoke_api_key(intruder.id, api_key.id)
    assert store.find_active_api_key(api_key.key) is not None
    assert store.list_api_keys(intruder.id) == []


def test_revoking_an_unknown_key_reports_false(store: UserStore) -> None:
    user = store.create_user(new_email(), "hash")
    assert not store.revoke_api_key(user.id, 2**62)


def test_an_unknown_public_id_finds_no_key(store: UserStore) -> None:
    assert store.find_active_api_key("no-such-key") is None


# --- migrations -------------------------------------------------------------------------------


def schema_diff(url: str, metadata: MetaData) -> list[object]:
    engine = create_engine(sqlalchemy_url(url), poolclass=NullPool)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection, opts={"compare_type": True, "compare_server_default": True}
            )
            return compare_metadata(context, metadata)
    finally:
        engine.dispose()


def test_the_migrated_schema_matches_the_models(migrated_url: str) -> None:
    assert schema_diff(migrated_url, Base.metadata) == []
    # The comparison does look at the tables: against no models it would drop both.
    removed = {d[1].name for d in schema_diff(migrated_url, MetaData()) if d[0] == "remove_table"}
    assert removed == {"users", "api_keys"}


def test_gateways_migrating_one_database_at_once_all_succeed(database_url: str) -> None:
    with new_database(database_url) as url:
        results = race(4, lambda: migrate(url))
        assert results == [None] * 4
        engine = create_engine(sqlalchemy_url(url), poolclass=NullPool)
        try:
            with engine.connect() as connection:
                version = connection.execute(text("SELECT version_num FROM alembic_version"))
                assert version.scalars().all() == ["0001"]
                assert {"users", "api_keys"} <= set(inspect(connection).get_table_names())
        finally:
            engine.dispose()
