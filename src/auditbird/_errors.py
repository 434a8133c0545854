"""The error hierarchy: callers catch what they mean, everything is an ``AuditError``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


class AuditError(Exception):
    """Base class of every error auditbird raises on purpose."""

    #: The request reached the store and was handled (e.g. rows quarantined by Tinybird):
    #: sending the same rows again would not help. False when nothing is known to be stored.
    delivered: bool = False


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the input: where (a dotted path) and what."""

    loc: str
    msg: str
    index: int | None = None  # position in a batch, when the input was a batch

    def __str__(self) -> str:
        where = self.loc if self.index is None else f"[{self.index}].{self.loc}".rstrip(".")
        return f"{where}: {self.msg}" if where else self.msg

    def as_dict(self) -> dict[str, object]:
        """As JSON: ``{"index": ..., "loc": ..., "msg": ...}`` (the service's ``errors`` items)."""
        return {"index": self.index, "loc": self.loc, "msg": self.msg}


class AuditValidationError(AuditError, ValueError):
    """Input that cannot become an event, or a read's bad parameter. Lists every problem.

    ``write=True`` (what validation raises for publishes) adds that nothing was stored; a read's
    error never says so, as nothing was being stored."""

    def __init__(self, problems: Sequence[Problem], *, write: bool = False) -> None:
        self.problems: list[Problem] = list(problems)
        self.write = write
        lines = "\n".join(f"  - {p}" for p in self.problems)
        count = len(self.problems)
        what = f"{count} invalid field{'s' if count != 1 else ''}"
        super().__init__(f"{what}{'; nothing was stored' if write else ''}:\n{lines}")

    def errors(self) -> list[dict[str, object]]:
        """Every problem as JSON, like pydantic's ``ValidationError.errors()``.

        >>> AuditValidationError([Problem("id", "required")]).errors()
        [{'index': None, 'loc': 'id', 'msg': 'required'}]
        """
        return [p.as_dict() for p in self.problems]


class StoreUnavailable(AuditError):
    """The store could not be reached or answered with a server-side error. Safe to retry."""


class ConflictError(AuditError):
    """An append's ``expected_revision`` did not match the stream: another writer got there first."""


class UnsupportedOperation(AuditError):
    """The store cannot do what was asked and says so rather than pretending."""


class NotFound(AuditError, LookupError):
    """The thing asked for does not exist (in this workspace)."""


class AuthenticationError(AuditError, PermissionError):
    """A remote store refused the credentials (HTTP 401/403): a wrong or revoked token or API
    key, another workspace, or a missing scope. Not retried: fix the credential."""


class ProjectionError(AuditError):
    """An event a projection's handler needs cannot be read as its schema says (see
    ``Event.schema_error``): register an upcaster or fix the schema."""
