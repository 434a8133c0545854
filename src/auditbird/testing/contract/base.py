"""The base tier's contract: append, query newest first with a keyset cursor, close, and what
the facade builds on them (lists, filters, history, projections, the async facade)."""

from __future__ import annotations

import asyncio
import time
import unittest
from typing import Any, ClassVar

from pydantic import BaseModel

from ..._errors import AuditValidationError, NotFound, UnsupportedOperation
from ...actions import ActionRegistry, action
from ...async_log import AsyncAuditLog
from ...event import Event, new_uid
from ...log import AuditLog
from ...projections import Projection, on
from ...query import Query
from ...stores.base import Store
from ...stores.capabilities import TIERS, require, supports

__all__ = ["StoreTestCase", "T0", "event_n"]

T0 = 1_700_000_000_000
SEED = {
    "id": "monitor:1",
    "action": "monitor.down",
    "targets": [{"id": "1", "type": "monitor"}],
    "metadata": {"region": "gru", "statusCode": 400, "message": "timeout"},
}


def event_n(i: int, **kw: Any) -> dict[str, Any]:
    """The i-th event of a varied batch: 3 streams, 2 actions, 4 actors, 5 targets + a page."""
    base: dict[str, Any] = {
        "id": f"monitor:{i % 3}",
        "action": "monitor.down" if i % 2 else "monitor.recovered",
        "actor": {"id": f"u{i % 4}", "name": f"user {i % 4}"},
        "targets": [{"id": str(i % 5), "type": "monitor"}, {"id": "p1", "name": "page"}],
        "timestamp": T0 + i * 1000,
        "metadata": {"n": i, "note": "needle" if i == 7 else "hay"},
    }
    base.update(kw)
    return base


class Downs(Projection):
    """A projection for the suite: counts a stream's ``monitor.down`` events."""

    __projection_name__ = "auditbird.testing.contract.Downs"
    downs: int = 0

    @on("monitor.down")
    def _down(self, event: Event) -> None:
        self.downs += 1


class StoreTestCase(unittest.TestCase):
    """The base tier (:class:`~auditbird.stores.base.Store`). Override :meth:`make_store`."""

    tier: ClassVar[type] = Store
    __test__ = False  # abstract; a subclass with a make_store() is collected

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.__test__ = cls.make_store is not StoreTestCase.make_store

    def make_store(self) -> Any:
        """A fresh, empty store (called once per test)."""
        raise NotImplementedError

    def store_for(self, workspace: str) -> Any:
        """The store to reach ``workspace`` through (default: the one store)."""
        return self.store

    def close_store(self, store: Any) -> None:
        """Clean up after a test (default: ``store.close()``)."""
        store.close()

    def setUp(self) -> None:
        if type(self).make_store is StoreTestCase.make_store:
            self.skipTest("an abstract contract case: subclass it with a make_store()")
        self.store = self.make_store()
        for klass in type(self).__mro__:
            tier = vars(klass).get("tier")
            if tier is not None:
                require(self.store, tier)  # a case for a tier the store does not declare is a bug

    def tearDown(self) -> None:
        self.close_store(self.store)

    def log(self, workspace: str = "", **options: Any) -> AuditLog:
        """A log over the store, in ``workspace``."""
        return AuditLog(self.store_for(workspace), workspace=workspace, **options)

    # -- rows and round trips -------------------------------------------------------------

    def test_seed_example_round_trips(self) -> None:
        registry = ActionRegistry()

        @action("monitor.down", registry=registry)
        class MonitorDown(BaseModel):
            region: str
            statusCode: int
            message: str | None = None

        log = self.log(registry=registry)
        stored = log.publish_audit_log(SEED)
        [read] = log.get_audit_log(event_id="monitor:1")
        self.assertEqual(read.uid, stored.uid)
        self.assertEqual(read.metadata, MonitorDown(region="gru", statusCode=400, message="timeout"))
        self.assertEqual((read.actor.id, read.actor.name), ("", "system"))
        self.assertEqual(read.to_dict(), stored.to_dict())

    def test_both_target_shapes_round_trip_unchanged(self) -> None:
        log = self.log()
        targets = [{"id": "1", "name": "monitor"}, {"id": "2", "type": "incident"}]
        log.publish_audit_log({"id": "s:1", "action": "thing.done", "targets": targets})
        [read] = log.get_audit_log(event_id="s:1")
        self.assertEqual(read.to_dict()["targets"], targets)

    def test_stream_is_newest_first_with_uid_tiebreak(self) -> None:
        log = self.log()
        uids = sorted(new_uid() for _ in range(3))
        log.publish_many(
            [
                {"id": "m:1", "action": "a.b", "timestamp": T0, "uid": uids[0]},
                {"id": "m:1", "action": "a.b", "timestamp": T0 + 5, "uid": uids[1]},
                {"id": "m:1", "action": "a.b", "timestamp": T0, "uid": uids[2]},
                {"id": "m:2", "action": "a.b", "timestamp": T0 + 9},
            ]
        )
        self.assertEqual([e.uid for e in log.get_audit_log(event_id="m:1")], [uids[1], uids[2], uids[0]])

    def test_list_filters(self) -> None:
        log = self.log()
        log.publish_many([event_n(i) for i in range(20)])

        def ns(**filters: Any) -> list[int]:
            return sorted(e.to_dict()["metadata"]["n"] for e in log.list(limit=100, **filters))

        self.assertEqual(ns(action="monitor.down"), [i for i in range(20) if i % 2])
        self.assertEqual(ns(action=["monitor.down", "monitor.recovered"]), list(range(20)))
        self.assertEqual(ns(actor_id="u1"), [i for i in range(20) if i % 4 == 1])
        self.assertEqual(ns(target_type="monitor", target_id="3"), [i for i in range(20) if i % 5 == 3])
        self.assertEqual(ns(target_type="page"), list(range(20)))
        self.assertEqual(ns(event_id="monitor:2"), [i for i in range(20) if i % 3 == 2])
        self.assertEqual(ns(since=T0 + 5000, until=T0 + 8000), [5, 6, 7])
        self.assertEqual(ns(action="monitor.down", actor_id="u3", since=T0 + 10_000), [11, 15, 19])
        self.assertEqual(ns(text="needle"), [7])
        self.assertEqual(ns(action="nothing.here"), [])

    def test_text_search_ignores_case_for_ascii_letters_only(self) -> None:
        log = self.log()
        log.publish_many(
            [
                {"id": "m:1", "action": "a.b", "metadata": {"note": "Disk FULL"}},
                {"id": "m:2", "action": "a.b", "metadata": {"note": "Éclair"}},
            ]
        )
        self.assertEqual([e.id for e in log.list(text="disk full")], ["m:1"])
        self.assertEqual([e.id for e in log.list(text="M:1")], ["m:1"])
        self.assertEqual([e.id for e in log.list(text="Éclair")], ["m:2"])
        self.assertEqual([e.id for e in log.list(text="éclair")], [])  # not an ASCII letter

    def test_cursor_pages_cover_everything_once_in_order(self) -> None:
        log = self.log()
        # Several events per millisecond: the uid tie-break must keep pages stable.
        log.publish_many([event_n(i, timestamp=T0 + i // 3) for i in range(25)])
        seen: list[Event] = []
        cursor = None
        while True:
            page = log.list(limit=4, cursor=cursor)
            seen.extend(page.events)
            cursor = page.next_cursor
            if cursor is None:
                break
        self.assertEqual(len({e.uid for e in seen}), 25)
        keys = [(e.timestamp, e.uid) for e in seen]
        self.assertEqual(keys, sorted(keys, reverse=True))

    def test_a_uid_published_again_is_stored_once_and_the_first_copy_wins(self) -> None:
        log = self.log()
        uid = new_uid()
        log.publish_audit_log({"id": "d:1", "action": "a.b", "uid": uid, "metadata": {"copy": 1}})
        log.publish_audit_log({"id": "d:1", "action": "a.b", "uid": uid, "metadata": {"copy": 2}})
        log.publish_many([{"id": "d:1", "action": "a.b", "uid": uid}, {"id": "d:1", "action": "a.c"}])
        events = log.get_audit_log(event_id="d:1")
        self.assertEqual(sorted(e.action for e in events), ["a.b", "a.c"])
        self.assertEqual([e.metadata for e in events if e.uid == uid], [{"copy": 1}])

    def test_a_batch_with_one_bad_event_stores_nothing(self) -> None:
        log = self.log()
        with self.assertRaises(AuditValidationError) as info:
            log.publish_many([event_n(1), {"id": "", "action": "x.y"}, event_n(2)])
        self.assertEqual([p.index for p in info.exception.problems], [1])
        self.assertEqual(log.list(limit=10).events, [])

    def test_workspaces_never_see_each_other(self) -> None:
        a, b = self.log("acme"), self.log("globex")
        ea = a.publish_audit_log(event_n(1, id="shared:1"))
        eb = b.publish_audit_log(event_n(2, id="shared:1"))
        self.assertEqual([e.uid for e in a.get_audit_log(event_id="shared:1")], [ea.uid])
        self.assertEqual([e.uid for e in b.list(limit=100)], [eb.uid])
        self.assertIsNone(b.get(ea.uid))
        self.assertEqual([e.uid for e in a.list(target_type="page", limit=100)], [ea.uid])
        self.assertEqual(list(b.history("shared:1")), [eb])

    def test_metadata_that_no_longer_fits_is_returned_marked(self) -> None:
        registry = ActionRegistry()
        log = self.log(registry=registry)
        log.publish_audit_log({"id": "old:1", "action": "monitor.paused", "metadata": {"reason": 5}})

        @action("monitor.paused", registry=registry)
        class Paused(BaseModel):
            reason: str
            until: int

        [event] = log.get_audit_log(event_id="old:1")
        self.assertEqual(event.metadata, {"reason": 5})
        self.assertIn("until", event.schema_error or "")

    def test_get_and_event_by_uid(self) -> None:
        log = self.log()
        stored = log.publish_audit_log(SEED)
        self.assertEqual(log.event(stored.uid).to_dict(), stored.to_dict())
        self.assertIsNone(log.get(new_uid()))
        with self.assertRaises(NotFound):
            log.event(new_uid())

    def test_an_event_is_listed_once_however_many_of_its_targets_match(self) -> None:
        log = self.log()
        two = [{"id": "1", "type": "monitor"}, {"id": "2", "type": "monitor"}]
        stored = log.publish_audit_log({"id": "m:1", "action": "a.b", "targets": two})
        log.publish_audit_log({"id": "m:2", "action": "a.c", "targets": [{"id": "1", "type": "page"}]})
        self.assertEqual([e.uid for e in log.list(target_type="monitor")], [stored.uid])
        self.assertEqual(len(log.list(target_id="1")), 2)

    def test_the_default_timestamp_is_evaluated_per_event(self) -> None:
        log = self.log()
        first = log.publish_audit_log({"id": "t:1", "action": "a.b"})
        time.sleep(0.005)
        self.assertGreater(log.publish_audit_log({"id": "t:1", "action": "a.b"}).timestamp, first.timestamp)

    # -- the event-sourcing operations every store gets -----------------------------------

    def test_history_is_oldest_first_page_by_page(self) -> None:
        log = self.log()
        log.publish_many(
            [{"id": "m:1", "action": "a.b", "timestamp": T0 + i, "metadata": {"n": i}} for i in range(7)]
        )
        log.publish_audit_log({"id": "m:2", "action": "a.b", "timestamp": T0})
        self.assertEqual([e.metadata["n"] for e in log.history("m:1", page_size=3)], list(range(7)))
        self.assertEqual([e.metadata["n"] for e in log.history("m:1", after_revision=5)], [5, 6])
        self.assertEqual([e.metadata["n"] for e in log.history("m:1", as_of=T0 + 1)], [0, 1])

    def test_a_uid_published_again_comes_back_once_from_paged_history(self) -> None:
        log = self.log()
        uid = new_uid()
        log.publish_audit_log({"id": "m:1", "action": "a.b", "uid": uid, "timestamp": T0 + 1})
        log.publish_audit_log({"id": "m:1", "action": "a.c", "timestamp": T0 + 2})
        log.publish_audit_log({"id": "m:1", "action": "a.b", "uid": uid, "timestamp": T0 + 3})
        got = [(e.uid, e.timestamp) for e in log.history("m:1", page_size=1)]
        self.assertEqual(len(got), 2)
        self.assertEqual(got[0], (uid, T0 + 1))

    def test_project_folds_the_stream(self) -> None:
        log = self.log()
        log.publish_many(
            [{"id": "monitor:1", "action": "monitor.down", "timestamp": T0 + i} for i in range(3)]
        )
        log.publish_audit_log({"id": "monitor:1", "action": "monitor.up", "timestamp": T0 + 9})
        state = log.project("monitor:1", Downs)
        self.assertEqual((state.downs, state.revision), (3, 4))
        self.assertEqual(log.project("monitor:1", Downs, as_of=T0 + 1).downs, 2)

    def test_the_async_facade_does_the_same(self) -> None:
        async def main() -> tuple[list[str], int, int]:
            log = AsyncAuditLog(self.store_for(""))
            stored = await log.publish_many([{"id": "monitor:1", "action": "monitor.down"} for _ in range(2)])
            listed = [e.uid async for e in log.iter_events(page_size=1)]
            history = [e.uid async for e in log.history("monitor:1", page_size=1)]
            state = await log.project("monitor:1", Downs)
            self.assertEqual(sorted(listed), sorted(e.uid for e in stored))
            return history, state.downs, len(await log.get_audit_log("monitor:1"))

        history, downs, count = asyncio.run(main())
        self.assertEqual((len(history), downs, count), (2, 2, 2))

    def test_what_the_store_does_not_declare_fails_clearly(self) -> None:
        log = self.log()
        name = type(self.store_for("")).__name__
        for tier, call in [
            ("StreamStore", lambda: log.revision("m:1")),
            ("HistogramStore", lambda: log.histogram()),
            ("FollowStore", lambda: list(log.follow(idle_timeout=0))),
        ]:
            declared = {t.__name__ for t in TIERS if supports(self.store_for(""), t)}
            if tier in declared:
                continue
            with self.assertRaises(UnsupportedOperation) as info:
                call()
            self.assertIn(name, str(info.exception))

    def test_query_answers_rows_with_every_column(self) -> None:
        log = self.log()
        stored = log.publish_audit_log(SEED)
        [row] = self.store_for("").query(Query(workspace="", uid=stored.uid, limit=1))
        self.assertEqual(
            (row.uid, row.id, row.action, row.timestamp, row.version),
            (stored.uid, "monitor:1", "monitor.down", stored.timestamp, 1),
        )
