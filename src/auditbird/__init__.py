"""auditbird: typed, immutable audit events, an embedded SQLite log by default, Tinybird at scale.

>>> from auditbird import AuditLog
>>> from auditbird.testing import MemoryStore
>>> log = AuditLog(MemoryStore())        # AuditLog() alone writes ./auditbird.db
>>> log.publish_audit_log({"id": "monitor:1", "action": "monitor.down"}).actor.name
'system'

Everything public is importable from here; see ARCHITECTURE.md for how the pieces fit.
"""

from ._errors import (
    AuditError,
    AuditValidationError,
    AuthenticationError,
    ConflictError,
    NotFound,
    Problem,
    ProjectionError,
    StoreUnavailable,
    UnsupportedOperation,
)
from ._facade import Filters, Histogram, Page
from .actions import ActionRegistry, action, default_registry, upcaster
from .async_log import AsyncAuditLog
from .emit import emit
from .erasure import Personal
from .event import Actor, Event, Target
from .history import Recorded
from .log import AuditLog
from .projections import Projection, on
from .query import Query
from .stores import open_store
from .tinybird.config import Tinybird
from .validation import Limits

__version__ = "0.1.0"

__all__ = [
    "AuditLog",
    "AsyncAuditLog",
    "Tinybird",
    "action",
    "upcaster",
    "Personal",
    "emit",
    "ActionRegistry",
    "default_registry",
    "Event",
    "Actor",
    "Target",
    "Page",
    "Histogram",
    "Filters",
    "Recorded",
    "Projection",
    "on",
    "Query",
    "Limits",
    "open_store",
    "AuditError",
    "AuditValidationError",
    "AuthenticationError",
    "StoreUnavailable",
    "ConflictError",
    "UnsupportedOperation",
    "NotFound",
    "ProjectionError",
    "Problem",
    "__version__",
]
