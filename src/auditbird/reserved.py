"""Actions auditbird records itself, which no writer may publish.

``verify`` and retention read ``retention.apply`` events as the proof of what retention removed;
readers take ``audit_log.subject_erased`` as the proof of an erasure, ``audit_log.stream_added``
as the record of an admin's change, ``audit_log.viewed`` / ``audit_log.exported`` as the record
of reads. A write key that could publish them could forge that proof: claim a deletion happened
under retention, fake an erasure, hide its reads among made-up ones. So every action whose
resource's first part is a reserved namespace is refused from publish, ``publish_many`` and
``emit``, whatever the caller, with an :class:`~auditbird.AuditValidationError` (the service
answers it 422)::

    log.publish_audit_log({"id": "x", "action": "retention.apply"})
    # AuditValidationError: action: 'retention.apply' is in the 'retention' namespace, ...

The library records its own events inside :func:`system_events` (a context variable, so it
covers this task or thread only, never another request's). An operator can use it too, to
record by hand what the library would have (e.g. an erasure whose record failed); an API key
never reaches it.

The decision is made on the validated action (the pattern ``resource.verb`` already holds):
its first dot-separated part, compared case-insensitively (``Retention.apply`` is refused too,
so no look-alike sits beside the real records), against :data:`RESERVED_NAMESPACES`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from ._errors import AuditValidationError, Problem

__all__ = ["RESERVED_NAMESPACES", "is_reserved", "refuse_reserved", "system_events"]

# Every namespace the library emits in (grep for ERASED_ACTION, RUN_ACTION, "audit_log."):
# audit_log.viewed / .exported (service reads), .subject_erased (erasure), .stream_added /
# .stream_changed / .stream_removed (streams over the API); retention.apply / retention.set.
RESERVED_NAMESPACES = frozenset({"audit_log", "retention"})

_system: ContextVar[bool] = ContextVar("auditbird_system_events", default=False)


def is_reserved(action: str) -> bool:
    """True if ``action`` (``resource.verb``) is in a namespace auditbird records itself."""
    return action.split(".", 1)[0].lower() in RESERVED_NAMESPACES


@contextmanager
def system_events() -> Iterator[None]:
    """Let this task or thread publish reserved actions (the library's own records)."""
    token = _system.set(True)
    try:
        yield
    finally:
        _system.reset(token)


def refuse_reserved(actions: Iterable[str], *, batch: bool = False) -> None:
    """Raise :class:`AuditValidationError` naming each reserved action, unless inside
    :func:`system_events`."""
    if _system.get():
        return
    problems = [
        Problem(
            "action",
            f"{action!r} is in the {action.split('.', 1)[0]!r} namespace, which auditbird records "
            f"itself ({', '.join(sorted(RESERVED_NAMESPACES))}); choose an action of your own "
            "resource (e.g. 'billing.retention_changed')",
            i if batch else None,
        )
        for i, action in enumerate(actions)
        if is_reserved(action)
    ]
    if problems:
        raise AuditValidationError(problems, write=True)
