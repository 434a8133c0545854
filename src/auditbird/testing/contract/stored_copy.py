"""The contract of :class:`~auditbird.stores.capabilities.StoredCopyStore`: an append that says
which rows were already stored, and what is stored for them."""

from __future__ import annotations

from typing import Any, ClassVar

from ...codec import encode
from ...event import Event, new_uid
from ...query import Query
from ...row import Row
from ...stores.capabilities import StoredCopyStore
from .base import T0, StoreTestCase

__all__ = ["StoredCopyStoreTestCase"]


def _row(uid: str, **fields: Any) -> Row:
    return encode(Event(**{"id": "m:1", "action": "a.first", "timestamp": T0, "uid": uid, **fields}))


class StoredCopyStoreTestCase(StoreTestCase):
    """``append``: ``{index: row as stored}`` for each row not stored as given; nothing
    for new rows."""

    tier: ClassVar[type] = StoredCopyStore

    def _stored(self, uid: str) -> list[Row]:
        return self.store_for("").query(Query(workspace="", uid=uid, limit=10))

    def test_new_rows_are_stored_and_nothing_is_reported(self) -> None:
        rows = [_row(new_uid()), _row(new_uid(), id="m:2")]
        self.assertEqual(self.store_for("").append(rows), {})
        self.assertEqual([r[:9] for r in self._stored(rows[1].uid)], [rows[1][:9]])

    def test_a_taken_uid_is_answered_with_the_first_copy_which_stays(self) -> None:
        store = self.store_for("")
        uid, fresh = new_uid(), new_uid()
        first = _row(uid, metadata={"n": 1})
        store.append([first])
        again = _row(uid, id="m:9", action="a.second", timestamp=T0 + 5, metadata={"n": 2})
        kept = store.append([_row(fresh), again])
        self.assertEqual(sorted(kept), [1])
        self.assertEqual(kept[1][:9], first[:9])
        self.assertEqual([r[:9] for r in self._stored(uid)], [first[:9]])
        self.assertEqual(len(self._stored(fresh)), 1)

    def test_a_uid_repeated_in_one_append_is_kept_as_its_first_occurrence(self) -> None:
        uid = new_uid()
        first, second = _row(uid), _row(uid, action="a.second")
        kept = self.store_for("").append([first, second])
        self.assertEqual({i: r[:9] for i, r in kept.items()}, {1: first[:9]})
        self.assertEqual([r[:9] for r in self._stored(uid)], [first[:9]])
