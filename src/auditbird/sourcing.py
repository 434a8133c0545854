"""Event-sourcing methods of :class:`AuditLog` (history, projections, change tracking,
subscriptions). Kept apart from the facade's core so the two grow independently."""

from __future__ import annotations


class EventSourcingMixin:
    """Mixed into :class:`auditbird.AuditLog`."""
