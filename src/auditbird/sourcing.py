"""Event-sourcing methods of :class:`AuditLog` (history, projections, change tracking,
subscriptions). Kept apart from the facade's core so the two grow independently; each
method delegates to the module of its concept."""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from ._errors import UnsupportedOperation
from .changes import change_event
from .history import Recorded, iter_history
from .projections import Projection, project
from .query import parse_time
from .snapshots import SnapshotStore
from .subscriptions import follow

if TYPE_CHECKING:
    from .actions import ActionRegistry
    from .event import Event

__all__ = ["EventSourcingMixin", "Recorded"]

P = TypeVar("P", bound=Projection)
_TimeArg = int | str | datetime | None


class EventSourcingMixin:
    """Mixed into :class:`auditbird.AuditLog`.

    >>> for event in log.history("monitor:1"):            # oldest first, constant memory
    ...     ...
    >>> log.project("monitor:1", MonitorState, as_of="2026-01-31T02:00:00Z").status
    >>> log.publish_change("monitor.updated", "monitor:1", before=old, after=new, actor=user)
    >>> for position, event in log.follow(after=checkpoint): ...
    """

    # Provided by AuditLog / LogCore.
    store: Any
    registry: ActionRegistry
    workspace: str

    if TYPE_CHECKING:

        def publish_audit_log(
            self, event: Mapping[str, Any] | Event, *, expected_revision: int | None = None
        ) -> Event: ...

    def history(
        self,
        event_id: str,
        *,
        after_revision: int | None = None,
        as_of: _TimeArg = None,
        workspace: str | None = None,
        page_size: int = 2_000,
    ) -> Iterator[Event]:
        """A stream's events oldest first (commit order), page by page in constant memory.

        ``after_revision=n`` starts after the stream's first ``n`` events; ``as_of`` (ms, ISO
        8601, ``2h`` ago, datetime) keeps the events that had happened by then.
        """
        return iter_history(
            self.store,
            self.registry,
            self.workspace if workspace is None else workspace,
            event_id,
            after_revision=after_revision,
            as_of=None if as_of is None else parse_time(as_of, field_name="as_of"),
            page_size=page_size,
        )

    def project(
        self,
        event_id: str,
        projection: type[P],
        *,
        as_of: _TimeArg = None,
        workspace: str | None = None,
        snapshots: bool = True,
    ) -> P:
        """The state of a stream folded by ``projection`` (now, or ``as_of``).

        With ``snapshots`` (SQLite stores), the fold starts from the projection's latest
        snapshot, and a fold that replayed ``projection.snapshot_every`` events or more saves
        a new one. ``state.revision`` is the ``expected_revision`` for a write decided on it.
        """
        return project(
            self.store,
            self.registry,
            self.workspace if workspace is None else workspace,
            event_id,
            projection,
            as_of=None if as_of is None else parse_time(as_of, field_name="as_of"),
            snapshots=self.snapshots if snapshots else None,
        )

    def snapshot(self, event_id: str, projection: type[P], *, workspace: str | None = None) -> P:
        """Fold the stream now and save a snapshot of the result (if it moved since the last)."""
        if self.snapshots is None:
            raise UnsupportedOperation(f"{type(self.store).__name__} keeps no snapshots (use a SQLite store)")
        return project(
            self.store,
            self.registry,
            self.workspace if workspace is None else workspace,
            event_id,
            projection,
            snapshots=self.snapshots,
            save_snapshot=True,
        )

    @property
    def snapshots(self) -> SnapshotStore | None:
        """Where projection snapshots live: a table in the SQLite file (None on other stores)."""
        cache = self.__dict__.get("_auditbird_snapshots")
        if cache is None:
            path = getattr(self.store, "path", None)
            if not isinstance(path, str) or path == ":memory:" or not hasattr(self.store, "read_committed"):
                return None
            with _SNAPSHOT_LOCK:
                cache = self.__dict__.get("_auditbird_snapshots")
                if cache is None:
                    cache = SnapshotStore(path)
                    weakref.finalize(self, cache.close)
                    self.__dict__["_auditbird_snapshots"] = cache
        return cache

    def publish_change(
        self,
        action: str,
        subject: str,
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
        """Record a change of ``subject`` with its before/after snapshots and changed fields.

        ``*.create`` needs ``after``, ``*.delete`` needs ``before``, ``*.update`` needs both;
        an update that changes nothing is not recorded and returns None. ``mask`` fields are
        stored as ``"[masked]"`` and ``drop`` fields not at all (secret-looking keys such as
        ``token``/``password`` are always masked).
        """
        event = change_event(
            action,
            subject,
            before=before,
            after=after,
            actor=actor,
            targets=targets,
            mask=mask,
            drop=drop,
            **fields,
        )
        if event is None:
            return None
        return self.publish_audit_log(event, expected_revision=expected_revision)

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
        Store the position of the last event you handled and pass it back to resume.
        """
        actions = (action,) if isinstance(action, str) else tuple(action or ())
        return follow(
            self.store,
            self.registry,
            self.workspace if workspace is None else workspace,
            after=after,
            event_id=event_id,
            actions=actions,
            batch=batch,
            poll_interval=poll_interval,
            idle_timeout=idle_timeout,
            stop=stop,
        )


_SNAPSHOT_LOCK = threading.Lock()
