"""On PostgreSQL too, a fold that read a subject's values before an erasure must not save them
as a snapshot after it (tests/test_security_leftovers_snapshot_race.py is the SQLite side).
The hook: the projection's handler runs the erasure through another log (another replica's
connections) after the fold read the plaintext and before it saves. Two replicas racing: an
erasure's transaction holds the workspace's generation while a save arrives."""

from __future__ import annotations

import asyncio
import threading
import uuid
from typing import Any

import psycopg
import pytest

from auditbird import (
    AsyncAuditLog,
    AuditLog,
    StoreUnavailable,
)
from auditbird.erasure import ERASED
from auditbird.snapshots import Snapshot
from auditbird.stores.capabilities import read_erasure_generation
from auditbird.stores.postgres import PostgresStore
from auditbird.stores.postgres_schema import MIGRATIONS, SCHEMA_VERSION
from auditbird.stores.postgres_snapshots import delete_snapshots, save_snapshot

from .erasure_support import ADA_MAIL, ErasedMidFold
from .erasure_support import invite as _invite
from .erasure_support import invited_registry as _registry


def _snapshots(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        return [r[0] for r in conn.execute("SELECT state FROM auditbird_snapshot")]


def test_a_fold_begun_before_an_erasure_saves_no_snapshot(postgres_url: str) -> None:
    with AuditLog(postgres_url, workspace="acme", registry=_registry()) as log:
        log.publish_audit_log(_invite())
        ErasedMidFold.erase_from = postgres_url
        try:
            folded = log.snapshot("org:1", ErasedMidFold)  # folds, erases mid-fold, then saves
        finally:
            ErasedMidFold.erase_from = ""
        assert folded.emails == [ADA_MAIL]  # the fold did read the plaintext: what is at stake
        assert _snapshots(postgres_url) == []  # ... and did not keep it
        # The next fold began after the erasure: it reads [erased] and saves.
        assert log.snapshot("org:1", ErasedMidFold).emails == [ERASED]
        saved = _snapshots(postgres_url)
        assert len(saved) == 1 and ADA_MAIL not in saved[0] and ERASED in saved[0]


def test_an_async_fold_begun_before_an_erasure_saves_no_snapshot(postgres_url: str) -> None:
    async def main() -> list[str]:
        async with AsyncAuditLog(postgres_url, workspace="acme", registry=_registry()) as log:
            await log.publish_audit_log(_invite())
            ErasedMidFold.erase_from = postgres_url
            try:
                return (await log.snapshot("org:1", ErasedMidFold)).emails
            finally:
                ErasedMidFold.erase_from = ""

    assert asyncio.run(main()) == [ADA_MAIL]
    assert _snapshots(postgres_url) == []


def _snap(generation: int | None, workspace: str = "acme") -> Snapshot:
    return Snapshot(workspace, "m:1", "p", "v1", 1, 1, 0, '{"n": 1}', erasure_generation=generation)


def test_a_save_checks_the_generation_in_its_statement(postgres_url: str) -> None:
    with PostgresStore(postgres_url) as keeper, PostgresStore(postgres_url) as other:
        before = read_erasure_generation(keeper, "acme")
        assert before == 0
        other.delete_snapshots("acme")  # another replica's erasure
        assert read_erasure_generation(keeper, "acme") == before + 1
        keeper.save_snapshot(_snap(before))
        assert keeper.load_snapshot("acme", "m:1", "p", "v1") is None
        keeper.save_snapshot(_snap(before + 1))
        assert keeper.load_snapshot("acme", "m:1", "p", "v1") is not None
        other.delete_snapshots("globex")  # another workspace's erasure fences nothing here
        keeper.save_snapshot(_snap(before + 1, "acme"))
        assert keeper.load_snapshot("acme", "m:1", "p", "v1") is not None
        # A fresh workspace (no generation row yet) saves at generation 0.
        keeper.save_snapshot(_snap(0, "initech"))
        assert keeper.load_snapshot("initech", "m:1", "p", "v1") is not None
        # A snapshot made by hand (no generation) is not fenced.
        other.delete_snapshots("acme")
        keeper.save_snapshot(_snap(None))
        assert keeper.load_snapshot("acme", "m:1", "p", "v1") is not None


def _wait_until_blocked(url: str, pid: int) -> None:
    """Until backend ``pid`` waits for a lock (the save queued behind the erasure)."""
    with psycopg.connect(url, autocommit=True) as conn:
        for _ in range(10_000):  # bounded; each query takes a round trip
            (blocked,) = conn.execute("SELECT cardinality(pg_blocking_pids(%s)) > 0", (pid,)).fetchone()
            if blocked:
                return
    raise AssertionError(f"the save (backend {pid}) never waited for the erasure's transaction")


@pytest.mark.parametrize("erased_before", [False, True], ids=["first-erasure", "later-erasure"])
def test_a_save_racing_another_replicas_erasure_waits_and_stores_nothing(
    postgres_url: str, erased_before: bool
) -> None:
    with PostgresStore(postgres_url, pool_size=1) as keeper:
        if erased_before:
            keeper.delete_snapshots("acme")  # the workspace has a generation row (1)
        generation = read_erasure_generation(keeper, "acme")
        with keeper._connection() as conn:  # the pool's only connection: the save will use it
            (pid,) = conn.execute("SELECT pg_backend_pid()").fetchone()
        # Another replica's erasure, midway: the store's own deletion, inside a transaction this
        # test holds open (its conn.transaction() is then a savepoint): generation bumped,
        # snapshots deleted, nothing committed yet.
        with psycopg.connect(postgres_url) as erasing:
            erasing.execute("SELECT 1")  # opens the transaction
            assert delete_snapshots(erasing, "acme") == 0
            errors: list[BaseException] = []

            def save() -> None:
                try:
                    keeper.save_snapshot(_snap(generation))
                except BaseException as exc:  # reported below
                    errors.append(exc)

            saver = threading.Thread(target=save)
            saver.start()
            _wait_until_blocked(postgres_url, pid)
            erasing.commit()
        saver.join()
        assert errors == []
        assert keeper.load_snapshot("acme", "m:1", "p", "v1") is None
        assert _snapshots(postgres_url) == []


def test_a_schema_2_database_gains_the_generations_and_keeps_its_snapshots(postgres_url: str) -> None:
    with psycopg.connect(postgres_url) as conn:  # what auditbird with schema 2 created
        conn.execute("CREATE TABLE auditbird_meta (key text PRIMARY KEY, value text NOT NULL)")
        for script in MIGRATIONS[:2]:
            conn.execute(script)
        conn.execute("INSERT INTO auditbird_meta VALUES ('schema_version', '2')")
        conn.execute("INSERT INTO auditbird_snapshot VALUES ('acme', 'm:1', 'p', 'v1', 1, 1, 0, '{}', 0)")
    with PostgresStore(postgres_url) as store:
        assert store.schema_version() == SCHEMA_VERSION == 3
        assert store.load_snapshot("acme", "m:1", "p", "v1") is not None  # kept across the upgrade
        assert read_erasure_generation(store, "acme") == 0
        assert store.delete_snapshots("acme") == 1
        assert read_erasure_generation(store, "acme") == 1


def test_a_least_privilege_role_folds_saves_and_erases(postgres_server: Any, postgres_url: str) -> None:
    PostgresStore(postgres_url).close()  # the owner creates the tables
    role = f"r_{uuid.uuid4().hex[:8]}"
    with postgres_server.admin() as conn:
        conn.execute(f'CREATE ROLE "{role}" LOGIN')  # PostgreSQL 15+: no CREATE on public
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f'GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO "{role}"')
    url = postgres_url.replace("postgresql://auditbird@", f"postgresql://{role}@", 1)
    with PostgresStore(url) as store:
        store.save_snapshot(_snap(read_erasure_generation(store, "acme")))  # creates the row at 0
        assert store.load_snapshot("acme", "m:1", "p", "v1") is not None
        assert store.delete_snapshots("acme") == 1
        store.save_snapshot(_snap(0))  # from a fold begun before that erasure
        assert store.load_snapshot("acme", "m:1", "p", "v1") is None


def test_an_erasure_racing_a_save_in_flight_waits_and_deletes_its_snapshot(postgres_url: str) -> None:
    with PostgresStore(postgres_url, pool_size=1) as eraser:
        with eraser._connection() as conn:  # the pool's only connection: the erasure will use it
            (pid,) = conn.execute("SELECT pg_backend_pid()").fetchone()
        # Another replica's save, midway: the store's own statement, in a transaction this test
        # holds open (stored, fence checked, not committed yet).
        with psycopg.connect(postgres_url) as saving:
            saving.execute("SELECT 1")  # opens the transaction
            assert save_snapshot(saving, _snap(0)) is True
            errors: list[BaseException] = []
            deleted: list[int] = []

            def erase() -> None:
                try:
                    deleted.append(eraser.delete_snapshots("acme"))
                except BaseException as exc:  # reported below
                    errors.append(exc)

            eraser_thread = threading.Thread(target=erase)
            eraser_thread.start()
            _wait_until_blocked(postgres_url, pid)
            saving.commit()
        eraser_thread.join()
        assert errors == [] and deleted == [1]  # the erasure saw the save's row, and deleted it
        assert _snapshots(postgres_url) == []
        assert read_erasure_generation(eraser, "acme") == 1


def test_a_role_without_rights_on_the_generations_is_told_to_grant_them(
    postgres_server: Any, postgres_url: str
) -> None:
    """A role granted table by table before schema 3: a fold does not save unfenced."""
    with AuditLog(postgres_url, workspace="acme", registry=_registry()) as log:  # the owner
        log.publish_audit_log(_invite())
    role = f"r_{uuid.uuid4().hex[:8]}"
    with postgres_server.admin() as conn:
        conn.execute(f'CREATE ROLE "{role}" LOGIN')
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f'GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO "{role}"')
        conn.execute(f'REVOKE ALL ON auditbird_snapshot_erasure FROM "{role}"')
    url = postgres_url.replace("postgresql://auditbird@", f"postgresql://{role}@", 1)
    with AuditLog(url, workspace="acme", registry=_registry()) as log:
        with pytest.raises(StoreUnavailable) as info:
            log.snapshot("org:1", ErasedMidFold)
        grant = "GRANT SELECT, INSERT, UPDATE, DELETE ON auditbird_snapshot, auditbird_snapshot_erasure"
        assert grant in str(info.value)
        with pytest.raises(StoreUnavailable, match="nothing was saved or deleted"):
            log.store.delete_snapshots("acme")
    assert _snapshots(postgres_url) == []
