"""The contract of each wider tier (:mod:`auditbird.stores.capabilities`)."""

from __future__ import annotations

import threading
from typing import ClassVar

from ..._errors import ConflictError
from ...query import Query
from ...snapshots import Snapshot
from ...stores.capabilities import FollowStore, HistogramStore, ReplayStore, SnapshotStoreTier, StreamStore
from .base import T0, Downs, StoreTestCase, event_n

__all__ = [
    "ReplayStoreTestCase",
    "StreamStoreTestCase",
    "FollowStoreTestCase",
    "HistogramStoreTestCase",
    "SnapshotStoreTestCase",
]


class ReplayStoreTestCase(StoreTestCase):
    """:class:`~auditbird.stores.capabilities.ReplayStore`: ``query(order="asc")`` with a keyset."""

    tier: ClassVar[type] = ReplayStore

    def test_query_reads_oldest_first_after_a_keyset_position(self) -> None:
        log = self.log()
        log.publish_many([event_n(i, timestamp=T0 + i // 2) for i in range(9)])
        store = self.store_for("")
        seen: list[tuple[int, str]] = []
        after = None
        while True:
            rows = store.query(Query(workspace="", order="asc", after=after, limit=4))
            seen.extend((r.timestamp, r.uid) for r in rows)
            if len(rows) < 4:
                break
            after = (rows[-1].timestamp, rows[-1].uid)
        self.assertEqual(len(set(seen)), 9)
        self.assertEqual(seen, sorted(seen))


class StreamStoreTestCase(StoreTestCase):
    """:class:`~auditbird.stores.capabilities.StreamStore`: revisions, ``expected_revision``,
    a stream in commit order."""

    tier: ClassVar[type] = StreamStore

    def test_revision_counts_the_events_of_one_stream_in_one_workspace(self) -> None:
        log, other = self.log(), self.log("other")
        log.publish_many(
            [{"id": "m:1", "action": "a.b"} for _ in range(3)] + [{"id": "m:2", "action": "a.b"}]
        )
        other.publish_audit_log({"id": "m:1", "action": "a.b"})
        self.assertEqual((log.revision("m:1"), log.revision("m:2"), log.revision("m:3")), (3, 1, 0))
        self.assertEqual(other.revision("m:1"), 1)

    def test_expected_revision_lets_one_writer_win_and_stores_nothing_for_the_other(self) -> None:
        log = self.log()
        log.publish_audit_log({"id": "m:1", "action": "a.b"}, expected_revision=0)
        with self.assertRaises(ConflictError):
            log.publish_audit_log({"id": "m:1", "action": "a.c"}, expected_revision=0)
        with self.assertRaises(ConflictError):
            log.publish_many([{"id": "m:1", "action": "a.c"}] * 2, expected_revision=5)
        log.publish_many(
            [{"id": "m:1", "action": "a.d"}, {"id": "m:1", "action": "a.e"}], expected_revision=1
        )
        self.assertEqual([e.action for e in log.history("m:1")], ["a.b", "a.d", "a.e"])

    def test_a_decision_on_projected_state_carries_its_revision(self) -> None:
        log = self.log()
        log.publish_audit_log({"id": "monitor:1", "action": "monitor.down"})
        state = log.project("monitor:1", Downs)
        log.publish_audit_log({"id": "monitor:1", "action": "monitor.up"}, expected_revision=state.revision)
        with self.assertRaises(ConflictError):  # decided on a state that is now stale
            log.publish_audit_log(
                {"id": "monitor:1", "action": "monitor.up"}, expected_revision=state.revision
            )

    def test_a_stream_reads_in_commit_order_with_positions(self) -> None:
        log = self.log()
        for ts in (T0 + 5, T0 + 1, T0 + 3):  # timestamps out of order: commit order still rules
            log.publish_audit_log({"id": "m:1", "action": "a.b", "timestamp": ts})
        store = self.store_for("")
        rows = store.query(Query(workspace="", event_id="m:1", order="position", limit=None))
        self.assertEqual([r.timestamp for r in rows], [T0 + 5, T0 + 1, T0 + 3])
        positions = [r.position for r in rows]
        self.assertTrue(all(p is not None for p in positions))
        self.assertEqual(positions, sorted(p or 0 for p in positions))
        tail = store.query(Query(workspace="", event_id="m:1", order="position", after_position=positions[0]))
        self.assertEqual([r.position for r in tail], positions[1:])


class FollowStoreTestCase(StoreTestCase):
    """:class:`~auditbird.stores.capabilities.FollowStore`: durable, gap-free positions."""

    tier: ClassVar[type] = FollowStore

    def test_follow_resumes_after_a_position_and_misses_nothing(self) -> None:
        log, other = self.log("acme"), self.log("other")
        log.publish_audit_log({"id": "m:1", "action": "a.b"})
        other.publish_audit_log({"id": "m:1", "action": "a.b"})
        log.publish_many([{"id": "m:2", "action": "a.c"}, {"id": "m:1", "action": "a.d"}])
        seen = list(log.follow(idle_timeout=0))
        self.assertEqual([r.event.action for r in seen], ["a.b", "a.c", "a.d"])
        first = seen[0].position
        assert first is not None
        self.assertEqual([r.event.action for r in log.follow(after=first, idle_timeout=0)], ["a.c", "a.d"])
        self.assertEqual([r.event.action for r in log.follow(event_id="m:1", idle_timeout=0)], ["a.b", "a.d"])

    def test_follow_sees_an_event_committed_while_it_waits(self) -> None:
        log = self.log()
        stop = threading.Event()
        got: list[str] = []

        def consume() -> None:
            for recorded in log.follow(poll_interval=0.01, stop=stop):
                got.append(recorded.event.action)
                stop.set()

        thread = threading.Thread(target=consume)
        thread.start()
        log.publish_audit_log({"id": "m:1", "action": "a.late"})
        thread.join(timeout=30)
        stop.set()
        self.assertEqual(got, ["a.late"])

    def test_read_committed_reads_every_workspace_in_commit_order(self) -> None:
        store = self.store_for("")
        self.log("a").publish_audit_log({"id": "m:1", "action": "a.b"})
        self.log("b").publish_audit_log({"id": "m:1", "action": "a.c"})
        rows = store.read_committed(0, 10)
        self.assertEqual([(r.workspace, r.action) for r in rows], [("a", "a.b"), ("b", "a.c")])
        self.assertEqual(store.last_position(), rows[-1].position)
        self.assertEqual(store.read_committed(rows[-1].position, 10), [])


class HistogramStoreTestCase(StoreTestCase):
    """:class:`~auditbird.stores.capabilities.HistogramStore`: counts over time by action."""

    tier: ClassVar[type] = HistogramStore

    def test_histogram_counts_by_bucket_and_action_for_the_filters(self) -> None:
        log = self.log()
        log.publish_many([event_n(i) for i in range(10)])  # one event a second from T0
        hist = log.histogram(buckets=2, since=T0, until=T0 + 10_000)
        self.assertEqual(hist.starts, [T0, T0 + 5_000])
        self.assertEqual(
            hist.counts,
            [{"monitor.recovered": 3, "monitor.down": 2}, {"monitor.down": 3, "monitor.recovered": 2}],
        )
        self.assertEqual(log.histogram(buckets=1, since=T0, until=T0 + 10_000, actor_id="u1").total(), 3)


class SnapshotStoreTestCase(StoreTestCase):
    """:class:`~auditbird.stores.capabilities.SnapshotStoreTier`: projection snapshots."""

    tier: ClassVar[type] = SnapshotStoreTier

    def test_a_snapshot_is_found_only_by_its_code_version(self) -> None:
        store = self.store_for("")
        store.save_snapshot(Snapshot("", "m:1", "p", "v1", 3, 3, T0, '{"downs": 3}'))
        store.save_snapshot(Snapshot("", "m:1", "p", "v1", 5, 4, T0, '{"downs": 4}'))
        found = store.load_snapshot("", "m:1", "p", "v1")
        self.assertEqual((found.position, found.revision, found.state), (5, 4, '{"downs": 4}'))
        self.assertIsNone(store.load_snapshot("", "m:1", "p", "v2"))
        self.assertIsNone(store.load_snapshot("other", "m:1", "p", "v1"))

    def test_project_saves_a_snapshot_and_folds_on_from_it(self) -> None:
        log = self.log()
        log.publish_many([{"id": "monitor:1", "action": "monitor.down"} for _ in range(3)])
        self.assertEqual(log.snapshot("monitor:1", Downs).downs, 3)
        store = self.store_for("")
        snap = store.load_snapshot("", "monitor:1", Downs.projection_name(), Downs.code_version(log.registry))
        self.assertEqual(snap.revision, 3)
        log.publish_audit_log({"id": "monitor:1", "action": "monitor.down"})
        state = log.project("monitor:1", Downs)
        self.assertEqual((state.downs, state.revision), (4, 4))
