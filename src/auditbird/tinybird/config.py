"""Where a Tinybird workspace is and how to reach it: the seed's ``new Tinybird({ token })``."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

__all__ = ["Tinybird", "REGIONS", "resolve_host"]

# Region name -> API host, from Tinybird's documentation.
REGIONS: dict[str, str] = {
    "eu": "https://api.tinybird.co",
    "gcp-europe-west3": "https://api.tinybird.co",
    "us-east": "https://api.us-east.tinybird.co",
    "gcp-us-east4": "https://api.us-east.tinybird.co",
    "gcp-europe-west2": "https://api.europe-west2.gcp.tinybird.co",
    "gcp-northamerica-northeast2": "https://api.northamerica-northeast2.gcp.tinybird.co",
    "aws-eu-central-1": "https://api.eu-central-1.aws.tinybird.co",
    "aws-eu-west-1": "https://api.eu-west-1.aws.tinybird.co",
    "aws-us-east-1": "https://api.us-east.aws.tinybird.co",
    "aws-us-west-2": "https://api.us-west-2.aws.tinybird.co",
}


def resolve_host(host: str | None) -> str:
    """A region name (``us-east``), a bare host name, or a URL -> a base URL without a slash."""
    value = (host or os.environ.get("TINYBIRD_HOST") or "eu").strip()
    if value in REGIONS:
        return REGIONS[value]
    if "://" not in value:
        if "." not in value and value != "localhost":
            known = ", ".join(sorted(REGIONS))
            raise ValueError(f"unknown Tinybird region {value!r}; use one of {known}, or a URL")
        value = f"https://{value}"
    return value.rstrip("/")


@dataclass(frozen=True)
class Tinybird:
    """Credentials and host of a Tinybird workspace.

    >>> tb = Tinybird(token=os.environ["TINYBIRD_TOKEN"], host="us-east")
    >>> log = AuditLog(tb=tb)

    ``token`` defaults to ``TINYBIRD_TOKEN``; ``host`` to ``TINYBIRD_HOST`` or the EU region,
    and takes a region name or a URL (``http://127.0.0.1:7181`` for the local server).
    """

    token: str = field(default_factory=lambda: os.environ.get("TINYBIRD_TOKEN", ""), repr=False)
    host: str | None = None
    datasource: str = "audit_log"

    def __post_init__(self) -> None:
        if not self.token:
            raise ValueError("Tinybird needs a token: pass Tinybird(token=...) or set TINYBIRD_TOKEN")
        object.__setattr__(self, "host", resolve_host(self.host))
