"""The base tier's contract for an async store (:class:`~auditbird.stores.base.AsyncStore`),
through :class:`~auditbird.AsyncAuditLog`: for stores with a native async client."""

from __future__ import annotations

import unittest
from typing import Any, ClassVar

from ..._errors import AuditValidationError
from ...async_log import AsyncAuditLog
from ...event import new_uid
from ...stores.base import AsyncStore
from ...stores.capabilities import require
from .base import T0, Downs, event_n

__all__ = ["AsyncStoreTestCase"]


class AsyncStoreTestCase(unittest.IsolatedAsyncioTestCase):
    """Override :meth:`make_store` (a fresh, empty async store per test)."""

    tier: ClassVar[type] = AsyncStore
    __test__ = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.__test__ = cls.make_store is not AsyncStoreTestCase.make_store

    async def make_store(self) -> Any:
        """A fresh, empty async store (awaited once per test)."""
        raise NotImplementedError

    async def asyncSetUp(self) -> None:
        """Make the store (it must be an :class:`AsyncStore`) and a log over it."""
        if type(self).make_store is AsyncStoreTestCase.make_store:
            self.skipTest("an abstract contract case: subclass it with a make_store()")
        self.store = require(await self.make_store(), AsyncStore)
        self.log = AsyncAuditLog(self.store)

    async def asyncTearDown(self) -> None:
        """Close the store."""
        await self.store.aclose()

    async def test_publish_and_read_back_newest_first(self) -> None:
        stored = await self.log.publish_many([event_n(i) for i in range(5)])
        page = await self.log.list(limit=3)
        self.assertEqual([e.uid for e in page], [e.uid for e in reversed(stored)][:3])
        rest = await self.log.list(limit=3, cursor=page.next_cursor)
        self.assertEqual(len(rest), 2)
        self.assertIsNone(rest.next_cursor)

    async def test_a_uid_published_again_is_stored_once(self) -> None:
        uid = new_uid()
        await self.log.publish_audit_log({"id": "d:1", "action": "a.b", "uid": uid})
        await self.log.publish_audit_log({"id": "d:1", "action": "a.b", "uid": uid})
        self.assertEqual([e.uid for e in await self.log.get_audit_log("d:1")], [uid])

    async def test_a_batch_with_one_bad_event_stores_nothing(self) -> None:
        with self.assertRaises(AuditValidationError):
            await self.log.publish_many([event_n(1), {"id": "", "action": "x.y"}])
        self.assertEqual((await self.log.list()).events, [])

    async def test_history_and_project(self) -> None:
        events = [{"id": "monitor:1", "action": "monitor.down", "timestamp": T0 + i} for i in range(3)]
        await self.log.publish_many(events)
        history = [e.timestamp async for e in self.log.history("monitor:1", page_size=2)]
        self.assertEqual(history, [T0, T0 + 1, T0 + 2])
        self.assertEqual((await self.log.project("monitor:1", Downs)).downs, 3)
