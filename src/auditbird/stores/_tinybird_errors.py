"""The errors of the Tinybird store: what Tinybird refused, and what to do about it."""

from __future__ import annotations

from collections.abc import Sequence

from .._errors import AuditError
from .._errors import AuthenticationError as _AuthenticationError

__all__ = [
    "TinybirdError",
    "AuthenticationError",
    "ResourceNotFound",
    "RequestRejected",
    "PartialIngest",
    "QuarantinedRows",
]


class TinybirdError(AuditError):
    """Tinybird refused a request in a way that retrying will not fix."""


class AuthenticationError(TinybirdError, _AuthenticationError):
    """The token was rejected (401/403): wrong token, wrong workspace or a missing scope."""


class ResourceNotFound(TinybirdError, LookupError):
    """A datasource or pipe does not exist at this host (or the host is in another region)."""


class RequestRejected(TinybirdError, ValueError):
    """Tinybird answered 400 or 413: the request itself is wrong; it was not stored."""


class PartialIngest(TinybirdError):
    """422: Tinybird stored part of the batch. Not retried automatically (it may duplicate);
    re-publishing the same events is safe, as the ``uid`` de-duplicates them on read."""


class QuarantinedRows(TinybirdError):
    """Rows the datasource's schema rejected went to ``<datasource>_quarantine``.

    The request itself was delivered (``delivered``): sending the rows again would not help.
    """

    delivered = True

    def __init__(self, quarantined: int, successful: int, datasource: str, reasons: Sequence[str]) -> None:
        self.quarantined = quarantined
        self.successful = successful
        self.datasource = datasource
        self.reasons = list(reasons)
        why = "; ".join(self.reasons) if self.reasons else "the reason could not be read"
        super().__init__(
            f"{quarantined} row(s) were quarantined in {datasource}_quarantine and are not readable "
            f"({successful} stored): {why}. Check that the datafiles pushed to Tinybird match this "
            f"auditbird version (`auditbird tinybird datafiles DIR` then `tb push`)"
        )
