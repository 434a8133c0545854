"""Every store in the repo passes the contract suite of every tier it declares.

The suite ships in the package (``auditbird.testing.contract``); each class here only says
how to make a fresh store. SQLite and the in-memory store declare every tier; Tinybird (the
real client against the local server) the base and replay tiers; the service client the base.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from auditbird.query import Query
from auditbird.row import Row
from auditbird.stores.capabilities import (
    ReplayStore,
    StoredCopyStore,
    StreamStore,
    tiers_of,
)
from auditbird.stores.service import AsyncServiceStore, ServiceStore
from auditbird.stores.sqlite import SQLiteStore
from auditbird.stores.tinybird import TinybirdStore
from auditbird.testing import MemoryStore
from auditbird.testing.contract import (
    AsyncStoreTestCase,
    FollowStoreTestCase,
    HistogramStoreTestCase,
    ReplayStoreTestCase,
    SnapshotStoreTestCase,
    StoredCopyStoreTestCase,
    StreamStoreTestCase,
)
from tests.plugins.service import wipe_events
from tests.plugins.tinybird_store import tinybird_store


class EveryTier(
    ReplayStoreTestCase,
    StreamStoreTestCase,
    FollowStoreTestCase,
    HistogramStoreTestCase,
    SnapshotStoreTestCase,
    StoredCopyStoreTestCase,
):
    """All tiers at once: the base tests run once."""


class TestMemoryStore(EveryTier):
    def make_store(self) -> MemoryStore:
        return MemoryStore()


class TestSQLiteStore(EveryTier):
    @pytest.fixture(autouse=True)
    def _tmp(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path

    def make_store(self) -> SQLiteStore:
        return SQLiteStore(self.tmp_path / f"contract-{uuid.uuid4().hex[:8]}.db")


class TestSQLiteStoreInMemory(EveryTier):
    def make_store(self) -> SQLiteStore:
        return SQLiteStore(":memory:")


class PrefixedTinybird(ReplayStore):
    """The Tinybird store seen through a workspace prefix: a private corner of the local
    server's one shared datasource, so tests never see each other's rows. It passes on the
    tiers of the store it wraps (replay)."""

    def __init__(self, store: TinybirdStore, prefix: str) -> None:
        self.store = store
        self.prefix = prefix

    def append(self, rows: Sequence[Row]) -> None:
        self.store.append([r._replace(workspace=self.prefix + r.workspace) for r in rows])

    def query(self, query: Query) -> list[Row]:
        rows = self.store.query(replace(query, workspace=self.prefix + query.workspace))
        return [r._replace(workspace=r.workspace[len(self.prefix) :]) for r in rows]

    def close(self) -> None:
        self.store.close()


class TestTinybirdStore(ReplayStoreTestCase):
    @pytest.fixture(autouse=True)
    def _server(self, tinybird_server: Any) -> None:
        self.server = tinybird_server

    def make_store(self) -> PrefixedTinybird:
        return PrefixedTinybird(tinybird_store(self.server), f"t{uuid.uuid4().hex[:12]}-")


class TestServiceStore(StoredCopyStoreTestCase):
    """The service client, one API key (so one store) per workspace, on a real server."""

    @pytest.fixture(autouse=True)
    def _server(self, live_server: Any) -> None:
        self.server = live_server
        wipe_events(live_server.db_path)

    def make_store(self) -> ServiceStore:
        self.stores: dict[str, ServiceStore] = {}
        return self.store_for("")

    def store_for(self, workspace: str) -> ServiceStore:
        if workspace not in self.stores:
            key = self.server.mint(workspace, "admin", name="contract")
            self.stores[workspace] = ServiceStore(self.server.url, api_key=key)
        return self.stores[workspace]

    def close_store(self, store: Any) -> None:
        for each in self.stores.values():
            each.close()


class TestAsyncServiceStore(AsyncStoreTestCase):
    """The service's native async client."""

    @pytest.fixture(autouse=True)
    def _server(self, live_server: Any) -> None:
        self.server = live_server
        wipe_events(live_server.db_path)

    async def make_store(self) -> AsyncServiceStore:
        return AsyncServiceStore(self.server.url, api_key=self.server.mint("", "admin", name="contract"))


class TestThreadedMemoryStore(AsyncStoreTestCase):
    """A blocking store behind AsyncAuditLog's worker threads."""

    async def make_store(self) -> Any:
        from auditbird.stores.threaded import threaded

        return threaded(MemoryStore())


def test_each_store_declares_the_tiers_its_suite_covers() -> None:
    assert {t.__name__ for t in tiers_of(MemoryStore())} == {
        "ReplayStore",
        "StreamStore",
        "FollowStore",
        "HistogramStore",
        "SnapshotStoreTier",
        "StoredCopyStore",
    }
    assert tiers_of(SQLiteStore(":memory:")) == tiers_of(MemoryStore())
    assert {t.__name__ for t in tiers_of(PrefixedTinybird.__new__(PrefixedTinybird))} == {"ReplayStore"}
    assert StreamStore not in tiers_of(ServiceStore.__new__(ServiceStore))
    assert StoredCopyStore in tiers_of(ServiceStore.__new__(ServiceStore))
