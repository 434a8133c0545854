"""The PostgreSQL store passes the contract suite of every tier it declares (all of SQLite's),
on a real throwaway cluster (tests/plugins/postgres.py)."""

from __future__ import annotations

from typing import Any

import pytest

from auditbird.stores.capabilities import ProvableStore, tiers_of
from auditbird.stores.postgres import PostgresStore
from auditbird.stores.sqlite import SQLiteStore
from auditbird.testing.contract import (
    FollowStoreTestCase,
    HistogramStoreTestCase,
    ReplayStoreTestCase,
    SnapshotStoreTestCase,
    StreamStoreTestCase,
)


class TestPostgresStore(
    ReplayStoreTestCase,
    StreamStoreTestCase,
    FollowStoreTestCase,
    HistogramStoreTestCase,
    SnapshotStoreTestCase,
):
    @pytest.fixture(autouse=True)
    def _server(self, postgres_server: Any) -> Any:
        self.server = postgres_server
        self.databases: list[str] = []
        yield
        for name in self.databases:
            self.server.drop_database(name)

    def make_store(self) -> PostgresStore:
        name = self.server.create_database()
        self.databases.append(name)
        return PostgresStore(self.server.url(name), pool_size=4)


def test_the_postgres_store_declares_every_tier_the_sqlite_store_does() -> None:
    declared = tiers_of(PostgresStore.__new__(PostgresStore))
    # Every tier but the Merkle tree's, which lives in SQLite files only (see ProvableStore).
    assert declared == tiers_of(SQLiteStore(":memory:")) - {ProvableStore}
    assert len(declared) == 6
