"""auditbird: typed, immutable audit events, an embedded SQLite log by default, Tinybird at scale."""

from ._errors import (
    AuditError,
    AuditValidationError,
    ConflictError,
    NotFound,
    Problem,
    StoreUnavailable,
    UnsupportedOperation,
)
from ._facade import Page
from .actions import ActionRegistry, action, default_registry, upcaster
from .async_log import AsyncAuditLog
from .emit import emit
from .event import Actor, Event, Target
from .log import AuditLog
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
    "emit",
    "ActionRegistry",
    "default_registry",
    "Event",
    "Actor",
    "Target",
    "Page",
    "Query",
    "Limits",
    "open_store",
    "AuditError",
    "AuditValidationError",
    "StoreUnavailable",
    "ConflictError",
    "UnsupportedOperation",
    "NotFound",
    "Problem",
    "__version__",
]
