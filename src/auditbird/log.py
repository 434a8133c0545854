"""The ``AuditLog`` facade: validation, defaults, codecs and cursors over any store."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from ._facade import Histogram, LogCore, Page, TimeArg
from .actions import ActionRegistry
from .event import Event
from .query import Query
from .sourcing import EventSourcingMixin
from .stores import default_url, open_store
from .stores.base import Row, Store
from .tinybird.config import Tinybird
from .validation import DEFAULT_LIMITS, Limits

__all__ = ["AuditLog", "Page"]


def _resolve_store(store: str | Store | None, tb: Tinybird | None, options: dict[str, Any]) -> Store:
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


class AuditLog(EventSourcingMixin, LogCore):
    """Publish and read typed audit events.

    >>> log = AuditLog()                                  # ./auditbird.db, or AUDITBIRD_URL
    >>> log = AuditLog(tb=Tinybird(token="p.ey..."))      # the seed's shape
    >>> log.publish_audit_log({"id": "monitor:1", "action": "monitor.down",
    ...                        "metadata": {"region": "gru", "statusCode": 400}})
    >>> log.get_audit_log(event_id="monitor:1")           # newest first

    ``store`` is a URL (``sqlite:///audit.db``, ``tinybird://...``, ``http://host:8000``) or a
    store object. ``strict=True`` rejects actions without a registered schema. Keyword
    options the store understands (``api_key=``, ``buffered=``, ...) are passed to it.
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
        self.store: Store = _resolve_store(store, tb, store_options)

    # -- writes ---------------------------------------------------------------------------

    def publish_audit_log(
        self, event: Mapping[str, Any] | Event, *, expected_revision: int | None = None
    ) -> Event:
        """Validate, fill defaults, store durably; return the stored event (with ``uid``).

        ``expected_revision``: fail with :class:`ConflictError` unless the stream holds
        exactly that many events (optimistic concurrency, on stores that guarantee it).
        """
        stored, row = self._prepare_one(event)
        self._append([row], expected_revision)
        return stored

    publish = publish_audit_log

    def publish_many(
        self, events: Sequence[Mapping[str, Any] | Event], *, expected_revision: int | None = None
    ) -> list[Event]:
        """Store a batch all or nothing: one bad event rejects the batch, naming its index."""
        stored, rows = self._prepare_many(events)
        self._append(rows, expected_revision)
        return stored

    def _append(self, rows: list[Row], expected_revision: int | None) -> None:
        if expected_revision is None:
            self.store.append(rows)
        else:
            self._check_revision_support(self.store)
            self.store.append(rows, expected_revision=expected_revision)  # type: ignore[call-arg]

    def revision(self, event_id: str, *, workspace: str | None = None) -> int:
        """How many events the stream holds: the ``expected_revision`` of the next append."""
        self._check_revision_support(self.store)
        ws = self.workspace if workspace is None else workspace
        return int(self.store.revision(ws, event_id))  # type: ignore[attr-defined]

    def histogram(
        self, *, buckets: int = 60, since: TimeArg = None, until: TimeArg = None, **filters: Any
    ) -> Histogram:
        """Event counts over time by action, for the filters of :meth:`list`."""
        q, bucket_ms = self._histogram_query(buckets, since, until, filters)
        return self._histogram(q, bucket_ms, self._store_histogram(self.store)(q, bucket_ms))

    # -- reads ----------------------------------------------------------------------------

    def get_audit_log(
        self, event_id: str, *, workspace: str | None = None, limit: int | None = None
    ) -> list[Event]:
        """A stream's events, newest first: the seed's ``getAuditLog({ event_id })``."""
        return self._decode(self.store.query(self._stream_query(event_id, workspace, limit)))

    def list(
        self,
        *,
        action: str | Sequence[str] | None = None,
        actor_id: str | None = None,
        target_type: str | None = None,
        target_id: str | None = None,
        since: TimeArg = None,
        until: TimeArg = None,
        workspace: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
        event_id: str | None = None,
        text: str | None = None,
    ) -> Page:
        """One page of events, newest first; pass ``page.next_cursor`` back for the next."""
        q = self._list_query(
            action=action,
            actor_id=actor_id,
            target_type=target_type,
            target_id=target_id,
            since=since,
            until=until,
            workspace=workspace,
            limit=limit,
            cursor=cursor,
            event_id=event_id,
            text=text,
        )
        return self._page(self.store.query(q), limit)

    def iter_events(self, *, page_size: int = 1_000, **filters: Any) -> Iterator[Event]:
        """Every event matching ``filters`` (as :meth:`list`), newest first, page by page."""
        cursor = filters.pop("cursor", None)
        while True:
            page = self.list(limit=page_size, cursor=cursor, **filters)
            yield from page.events
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def get(self, uid: str, *, workspace: str | None = None) -> Event | None:
        """One event by ``uid`` (in this log's workspace), or None."""
        rows = self.store.query(
            Query(workspace=self.workspace if workspace is None else workspace, uid=uid, limit=1)
        )
        return self._decode(rows)[0] if rows else None

    # -- lifecycle ------------------------------------------------------------------------

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
