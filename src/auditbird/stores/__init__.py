"""Stores by URL. Each scheme's module is imported only when used."""

from __future__ import annotations

import importlib
import os
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from .base import COLUMNS, AsyncStore, Row, Store

__all__ = ["open_store", "default_url", "redact_url", "Row", "Store", "AsyncStore", "COLUMNS", "SCHEMES"]

DEFAULT_URL = "sqlite:///./auditbird.db"

# scheme -> "module:factory"; the factory takes the URL and keyword options.
SCHEMES: dict[str, str] = {
    "sqlite": "auditbird.stores.sqlite:SQLiteStore.from_url",
    "tinybird": "auditbird.stores.tinybird:TinybirdStore.from_url",
    "tinybird+http": "auditbird.stores.tinybird:TinybirdStore.from_url",
    "tinybird+https": "auditbird.stores.tinybird:TinybirdStore.from_url",
    "postgresql": "auditbird.stores.postgres:PostgresStore.from_url",
    "postgres": "auditbird.stores.postgres:PostgresStore.from_url",
    "http": "auditbird.stores.service:ServiceStore.from_url",
    "https": "auditbird.stores.service:ServiceStore.from_url",
}


def default_url() -> str:
    return os.environ.get("AUDITBIRD_URL") or DEFAULT_URL


def redact_url(url: str) -> str:
    """A store URL fit for logs and names: no credentials, no query options (tokens live there)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def open_store(url: str, **options: Any) -> Any:
    """Open the store a URL names: ``sqlite:///audit.db``, ``tinybird://...``, ``http://...``."""
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    target = SCHEMES.get(scheme)
    if target is None:
        known = ", ".join(f"{s}://" for s in SCHEMES)
        raise ValueError(f"unknown store URL {url!r}; use one of {known}")
    module_name, _, attr = target.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj(url, **options)
