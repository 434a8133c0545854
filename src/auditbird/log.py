"""The ``AuditLog`` facade: validation, defaults, codecs and cursors over any store.

Every method runs an operation of :class:`~auditbird._facade.LogCore` on the store
(:func:`auditbird._ops.run`); :class:`~auditbird.AsyncAuditLog` awaits the same operations.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar, Unpack

from ._facade import Filters, Histogram, LogCore, Page, TimeArg
from ._ops import iterate, run
from .actions import ActionRegistry
from .event import Event
from .history import PAGE_SIZE, Recorded
from .projections import Projection
from .stores import default_url, open_store
from .stores.base import Store
from .stores.capabilities import SnapshotStoreTier, supports
from .tinybird.config import Tinybird
from .validation import DEFAULT_LIMITS, Limits

if TYPE_CHECKING:
    from .provable.proofs import ConsistencyProof, InclusionProof

__all__ = ["AuditLog", "Page"]

P = TypeVar("P", bound=Projection)


def resolve_store(store: Any, tb: Tinybird | None, options: dict[str, Any]) -> Any:
    """A store object from what a facade was given: a URL, a store, ``tb=``, or nothing."""
    if tb is not None:
        if store is not None:
            raise ValueError("pass either a store or tb=Tinybird(...), not both")
        from .stores.tinybird import TinybirdStore

        return TinybirdStore(tb, **options)
    if store is None:
        store = default_url()
    if isinstance(store, str):
        return open_store(store, **options)
    return store


class AuditLog(LogCore):
    """Publish and read typed audit events.

    >>> from auditbird.testing import MemoryStore
    >>> log = AuditLog(MemoryStore())          # AuditLog() is ./auditbird.db, or AUDITBIRD_URL
    >>> event = log.publish_audit_log({"id": "monitor:1", "action": "monitor.down",
    ...                                "metadata": {"region": "gru", "statusCode": 400}})
    >>> [e.uid for e in log.get_audit_log(event_id="monitor:1")] == [event.uid]   # newest first
    True
    >>> log.list(action="monitor.down").events[0].metadata
    {'region': 'gru', 'statusCode': 400}

    ``store`` is a URL (``sqlite:///audit.db``, ``tinybird://...``, ``http://host:8000``) or a
    store object; ``tb=Tinybird(token=...)`` is the seed's shape. ``strict=True`` rejects
    actions without a registered schema. Keyword options the store understands
    (``api_key=``, ``buffered=``, ...) are passed to it. What a store cannot do (revisions,
    follow, histograms, snapshots: see :mod:`auditbird.stores.capabilities`) raises
    :class:`~auditbird.UnsupportedOperation` naming the store and what to do instead.
    """

    def __init__(
        self,
        store: str | Store | None = None,
        *,
        tb: Tinybird | None = None,
        workspace: str = "",
        strict: bool = False,
        registry: ActionRegistry | None = None,
        limits: Limits = DEFAULT_LIMITS,
        **store_options: Any,
    ) -> None:
        super().__init__(workspace=workspace, strict=strict, registry=registry, limits=limits)
        self.store: Store = resolve_store(store, tb, store_options)
        self._attach_subject_keys(self.store)  # personal fields: auditbird.erasure

    # -- writes ---------------------------------------------------------------------------

    def publish_audit_log(
        self, event: Mapping[str, Any] | Event, *, expected_revision: int | None = None
    ) -> Event:
        """Validate, fill defaults, store durably; return the stored event (with ``uid``).

        A ``uid`` already stored in the workspace stores nothing: the first copy stays and is
        what this returns, whatever was sent (on a store that cannot tell at write time,
        Tinybird, it returns what was sent; ``get(uid)`` reads the stored copy).

        ``expected_revision``: fail with :class:`~auditbird.ConflictError` unless the stream
        holds exactly that many events (optimistic concurrency; stores of the stream tier).
        """
        return run(self.store, self._publish_op(event, expected_revision))

    publish = publish_audit_log

    def publish_many(
        self, events: Sequence[Mapping[str, Any] | Event], *, expected_revision: int | None = None
    ) -> list[Event]:
        """Store a batch all or nothing: one bad event rejects the batch, naming its index.
        Returns the stored events, in order (a re-published uid: its first copy)."""
        return run(self.store, self._publish_many_op(events, expected_revision))

    def publish_change(
        self,
        action: str,
        event_id: str,
        *,
        before: Any = None,
        after: Any = None,
        actor: Mapping[str, Any] | None = None,
        targets: list[Mapping[str, Any]] | None = None,
        mask: Iterable[str] = (),
        drop: Iterable[str] = (),
        expected_revision: int | None = None,
        **fields: Any,
    ) -> Event | None:
        """Record a change of the resource ``event_id`` names with its before/after states and changed fields.

        ``*.create`` needs ``after``, ``*.delete`` needs ``before``, ``*.update`` needs both;
        an update that changes nothing is not recorded and returns None. ``mask`` fields are
        stored as ``"[masked]"`` and ``drop`` fields not at all (secret-looking keys such as
        ``token``/``password`` are always masked).
        """
        op = self._publish_change_op(
            action,
            event_id,
            before=before,
            after=after,
            actor=actor,
            targets=targets,
            mask=mask,
            drop=drop,
            expected_revision=expected_revision,
            **fields,
        )
        return run(self.store, op)

    def revision(self, event_id: str, *, workspace: str | None = None) -> int:
        """How many events the stream holds: the ``expected_revision`` of the next append."""
        return run(self.store, self._revision_op(event_id, workspace))

    # -- reads ----------------------------------------------------------------------------

    def get_audit_log(
        self, event_id: str, *, workspace: str | None = None, limit: int | None = None
    ) -> list[Event]:
        """A stream's events, newest first: the seed's ``getAuditLog({ event_id })``."""
        return run(self.store, self._stream_op(event_id, workspace, limit))

    def list(self, *, limit: int = 50, cursor: str | None = None, **filters: Unpack[Filters]) -> Page:
        """One page of events, newest first; pass ``page.next_cursor`` back for the next.

        Filters (:class:`~auditbird._facade.Filters`): ``action`` (one or several),
        ``actor_id``, ``target_type``, ``target_id``, ``event_id``, ``text``, ``since``,
        ``until``, ``workspace``.
        """
        return run(self.store, self._list_op(limit, cursor, filters))

    def iter_events(
        self, *, page_size: int = 1_000, cursor: str | None = None, **filters: Unpack[Filters]
    ) -> Iterator[Event]:
        """Every event matching ``filters`` (as :meth:`list`), newest first, page by page."""
        return iterate(self.store, self._iter_op(page_size, cursor, filters))

    def get(self, uid: str, *, workspace: str | None = None) -> Event | None:
        """One event by ``uid`` (in this log's workspace), or None (as ``dict.get``)."""
        return run(self.store, self._get_op(uid, workspace, missing_ok=True))

    def event(self, uid: str, *, workspace: str | None = None) -> Event:
        """One event by ``uid``; :class:`~auditbird.NotFound` if this workspace has none."""
        found = run(self.store, self._get_op(uid, workspace, missing_ok=False))
        assert found is not None
        return found

    def histogram(self, *, buckets: int = 60, **filters: Unpack[Filters]) -> Histogram:
        """Event counts over time by action, for the filters of :meth:`list` (histogram tier)."""
        return run(self.store, self._histogram_op(buckets, filters))

    # -- event sourcing -------------------------------------------------------------------

    def history(
        self,
        event_id: str,
        *,
        after_revision: int | None = None,
        as_of: TimeArg = None,
        workspace: str | None = None,
        page_size: int = PAGE_SIZE,
    ) -> Iterator[Event]:
        """A stream's events oldest first (commit order), page by page.

        ``after_revision=n`` starts after the stream's first ``n`` events; ``as_of`` (ms, ISO
        8601, ``2h`` ago, datetime) keeps the events that had happened by then.
        """
        return iterate(self.store, self._history_op(event_id, after_revision, as_of, workspace, page_size))

    def project(
        self,
        event_id: str,
        projection: type[P],
        *,
        as_of: TimeArg = None,
        workspace: str | None = None,
        snapshots: bool = True,
    ) -> P:
        """The state of a stream folded by ``projection`` (now, or ``as_of``).

        With ``snapshots`` (stores of the snapshot tier), the fold starts from the
        projection's latest snapshot, and a fold that replayed ``projection.snapshot_every``
        events or more saves a new one. ``state.revision`` is the ``expected_revision`` for a
        write decided on it.
        """
        op = self._project_op(event_id, projection, as_of=as_of, workspace=workspace, snapshots=snapshots)
        return run(self.store, op)

    def snapshot(self, event_id: str, projection: type[P], *, workspace: str | None = None) -> P:
        """Fold the stream now and save a snapshot of the result (snapshot tier)."""
        return run(
            self.store, self._project_op(event_id, projection, workspace=workspace, save_snapshot=True)
        )

    @property
    def snapshots(self) -> SnapshotStoreTier | None:
        """The store, if it keeps projection snapshots (the snapshot tier), else None."""
        return self.store if supports(self.store, SnapshotStoreTier) else None  # type: ignore[return-value]

    def follow(
        self,
        after: int = 0,
        *,
        event_id: str | None = None,
        action: str | Sequence[str] | None = None,
        workspace: str | None = None,
        batch: int = 500,
        poll_interval: float = 0.2,
        idle_timeout: float | None = None,
        stop: threading.Event | None = None,
    ) -> Iterator[Recorded]:
        """``(position, event)`` for every event committed after ``after``, as it commits.

        Runs until ``stop`` is set, or until nothing new arrived for ``idle_timeout`` seconds.
        Store the position of the last event you handled and pass it back to resume (follow
        tier).
        """
        op = self._follow_op(
            after,
            event_id=event_id,
            action=action,
            workspace=workspace,
            batch=batch,
            poll_interval=poll_interval,
            idle_timeout=idle_timeout,
            stop=stop,
        )
        return iterate(self.store, op)

    # -- provable history (auditbird.provable) ----------------------------------------------

    def prove(self, uid: str, *, size: int | None = None, workspace: str | None = None) -> InclusionProof:
        """The inclusion proof of event ``uid`` in the workspace's tree (of ``size`` leaves,
        default: now): :func:`auditbird.provable.prove`."""
        from .provable import proofs

        return proofs.prove(self, uid, size=size, workspace=workspace)

    def consistency(
        self, old: int, new: int | None = None, *, workspace: str | None = None
    ) -> ConsistencyProof:
        """The proof that the tree of ``new`` leaves (default: now) extends the tree of ``old``:
        :func:`auditbird.provable.consistency`."""
        from .provable import proofs

        return proofs.consistency(self, old, new, workspace=workspace)

    def checkpoint(self, *, workspace: str | None = None) -> str:
        """A signed checkpoint of the tree as it is now (``auditbird checkpoint``)."""
        from .provable import checkpoint

        return checkpoint.sign_checkpoint(self, workspace=workspace)

    # -- lifecycle ------------------------------------------------------------------------

    def close(self) -> None:
        """Close the store (flushing what a buffered store still holds)."""
        self.store.close()

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
