"""The event-sourcing operations of both facades: history, projections, snapshots, change
tracking and subscriptions. Each is written once here, as an operation (:mod:`auditbird._ops`)
that :class:`~auditbird.AuditLog` runs and :class:`~auditbird.AsyncAuditLog` awaits; each
delegates to the module of its concept.

>>> from auditbird import AuditLog
>>> from auditbird.projections import Projection, on
>>> from auditbird.testing import MemoryStore
>>> class Status(Projection):
...     status: str = "unknown"
...     @on("monitor.down")
...     def _down(self, event): self.status = "down"
>>> log = AuditLog(MemoryStore())
>>> _ = log.publish_audit_log({"id": "monitor:1", "action": "monitor.down"})
>>> state = log.project("monitor:1", Status)
>>> state.status, state.revision
('down', 1)
>>> change = log.publish_change("monitor.updated", "monitor:1", before={"url": "a"}, after={"url": "b"})
>>> change.metadata["changed"]
['url']
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from ._ops import Op
from .changes import change_event
from .history import PAGE_SIZE, Recorded, history_op
from .projections import Projection, project_op
from .query import parse_time
from .subscriptions import follow_op

if TYPE_CHECKING:
    from .actions import ActionRegistry
    from .event import Event

__all__ = ["SourcingCore", "Recorded"]

P = TypeVar("P", bound=Projection)
_TimeArg = int | str | datetime | None


class SourcingCore:
    """Mixed into :class:`~auditbird._facade.LogCore`: the event-sourcing operations."""

    # Provided by LogCore.
    registry: ActionRegistry
    workspace: str

    if TYPE_CHECKING:

        def _publish_op(
            self, event: Mapping[str, Any] | Event, expected_revision: int | None
        ) -> Op[Event]: ...

    def _history_op(
        self,
        event_id: str,
        after_revision: int | None,
        as_of: _TimeArg,
        workspace: str | None,
        page_size: int = PAGE_SIZE,
    ) -> Op[None]:
        return history_op(
            self.registry,
            self.workspace if workspace is None else workspace,
            event_id,
            after_revision=after_revision,
            as_of=None if as_of is None else parse_time(as_of, field_name="as_of"),
            page_size=page_size,
        )

    def _project_op(
        self,
        event_id: str,
        projection: type[P],
        *,
        as_of: _TimeArg = None,
        workspace: str | None = None,
        snapshots: bool = True,
        save_snapshot: bool | None = None,
    ) -> Op[P]:
        return project_op(
            self.registry,
            self.workspace if workspace is None else workspace,
            event_id,
            projection,
            as_of=None if as_of is None else parse_time(as_of, field_name="as_of"),
            snapshots=snapshots,
            save_snapshot=save_snapshot,
        )

    def _publish_change_op(
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
    ) -> Op[Event | None]:
        event = change_event(
            action,
            event_id,
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
        return (yield from self._publish_op(event, expected_revision))

    def _follow_op(
        self,
        after: int,
        *,
        event_id: str | None,
        action: str | Sequence[str] | None,
        workspace: str | None,
        batch: int,
        poll_interval: float,
        idle_timeout: float | None,
        stop: threading.Event | None,
    ) -> Op[None]:
        actions = (action,) if isinstance(action, str) else tuple(action or ())
        return follow_op(
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
