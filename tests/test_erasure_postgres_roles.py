"""Subject keys in PostgreSQL under a least-privilege role (review findings 5 and 6): a role
with rights on the tables but no CREATE on the schema seals and reads (the tables are the
versioned runner's, created once by the owner); an erasure by a role that cannot rewrite the
keys table (VACUUM FULL needs its owner) is refused with nothing changed, since the deleted
key would stay in the table's file."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest

from auditbird import UnsupportedOperation
from auditbird.erasure.keys_postgres import PostgresSubjectKeys


def _service_role(postgres_server: Any, postgres_url: str) -> str:
    """A login role with row rights on the (owner-created) key tables and nothing else."""
    role = f"r_{uuid.uuid4().hex[:8]}"
    with postgres_server.admin() as conn:
        conn.execute(f'CREATE ROLE "{role}" LOGIN')  # PostgreSQL 15+: no CREATE on public
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f'GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO "{role}"')
    return postgres_url.replace("postgresql://auditbird@", f"postgresql://{role}@", 1)


@pytest.fixture
def owner_made_tables(postgres_url: str) -> str:
    keys = PostgresSubjectKeys(postgres_url)
    keys.key_for("acme", "user:1")  # the owner's first use creates the tables
    keys.close()
    return postgres_url


def test_a_role_without_create_seals_and_reads(postgres_server: Any, owner_made_tables: str) -> None:
    url = _service_role(postgres_server, owner_made_tables)
    keys = PostgresSubjectKeys(url)
    try:
        kid, cipher = keys.key_for("acme", "user:42")
        found = keys.lookup(kid)
        assert found is not None and found[0] == "acme"
        assert keys.has_subject("acme", "user:42")
    finally:
        keys.close()


def test_a_role_that_cannot_rewrite_the_keys_table_is_refused_and_nothing_changes(
    postgres_server: Any, owner_made_tables: str
) -> None:
    url = _service_role(postgres_server, owner_made_tables)
    keys = PostgresSubjectKeys(url)
    try:
        kid, _ = keys.key_for("acme", "user:42")
        with pytest.raises(UnsupportedOperation) as info:
            keys.destroy("acme", "user:42")
        assert "owner" in str(info.value) and "nothing" in str(info.value)
        assert keys.lookup(kid) is not None  # the key is still there: nothing half-done
    finally:
        keys.close()
    owner = PostgresSubjectKeys(owner_made_tables)
    try:
        assert owner.destroy("acme", "user:42") == 1  # the owner can
        assert owner.lookup(kid) is None
    finally:
        owner.close()


def test_tables_from_before_the_versioning_serve_a_role_that_cannot_record_it(
    postgres_server: Any, postgres_url: str
) -> None:
    from auditbird.erasure.keys_postgres import MIGRATIONS

    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(MIGRATIONS[0])  # what an earlier release created: the tables, no meta table
    url = _service_role(postgres_server, postgres_url)
    keys = PostgresSubjectKeys(url)
    try:
        kid, _ = keys.key_for("acme", "user:42")
        assert keys.lookup(kid) is not None
    finally:
        keys.close()
    owner = PostgresSubjectKeys(postgres_url)  # the owner's next connect records the version
    try:
        owner.key_for("acme", "user:43")
    finally:
        owner.close()
    with psycopg.connect(postgres_url) as conn:
        (version,) = conn.execute("SELECT value FROM auditbird_subject_keys_meta").fetchone()
    assert version == str(len(MIGRATIONS))
