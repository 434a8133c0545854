"""The store contract suite, one test case class per tier (eventsourcing's recorder test cases
are the model). A store passes a tier when its subclass of that tier's case passes.

    from auditbird.testing.contract import StoreTestCase, StreamStoreTestCase

    class TestMyStore(StreamStoreTestCase):          # the stream tier, and the base tier with it
        def make_store(self):
            return MyStore(...)                       # a fresh, empty store per test

Several tiers at once: inherit several cases (``class TestMine(ReplayStoreTestCase,
StreamStoreTestCase)``); the base tests run once. The cases are ``unittest.TestCase`` classes:
pytest and ``python -m unittest`` both run them, and nothing here needs pytest. A case whose
``make_store`` is not overridden is abstract: pytest does not collect it, unittest skips it.

An async store (its own async client) subclasses :class:`AsyncStoreTestCase` with an
``async def make_store()``.

Override ``store_for(workspace)`` for a store bound to one workspace (the service client:
one API key, one workspace), and ``close_store(store)`` for special clean-up.
"""

from .asynchronous import AsyncStoreTestCase
from .base import StoreTestCase
from .stored_copy import StoredCopyStoreTestCase
from .tiers import (
    FollowStoreTestCase,
    HistogramStoreTestCase,
    ReplayStoreTestCase,
    SnapshotStoreTestCase,
    StreamStoreTestCase,
)

__all__ = [
    "StoreTestCase",
    "AsyncStoreTestCase",
    "ReplayStoreTestCase",
    "StreamStoreTestCase",
    "FollowStoreTestCase",
    "HistogramStoreTestCase",
    "SnapshotStoreTestCase",
    "StoredCopyStoreTestCase",
]
