"""Stores by URL. Each scheme's module is imported only when used."""

from __future__ import annotations

import importlib
import os
from typing import Any
from urllib.parse import unquote_plus

from .base import COLUMNS, AsyncStore, Row, Store

__all__ = [
    "open_store",
    "default_url",
    "redact_url",
    "scrub_url",
    "Row",
    "Store",
    "AsyncStore",
    "COLUMNS",
    "SCHEMES",
]

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


# Query options whose values are shown in logs and errors; any other option's value (``token``,
# and whatever a future store adds) is hidden. An allowlist: a new secret is hidden by default.
_PUBLIC_OPTIONS = frozenset(
    {
        "region", "host", "datasource", "workspace", "synchronous", "buffered", "wait", "compress",
        "batch_rows", "max_retries", "flush_interval", "timeout", "max_retry_time", "spool_path",
        "spool_synchronous", "pool_size", "connect_timeout", "sslmode", "application_name", "tree",
    }
)  # fmt: skip
HIDDEN = "***"


def redact_url(url: str) -> str:
    """A store URL as given, minus its credentials: fit for logs and error messages.

    The user-info part (``TOKEN@``, ``user:password@``) is dropped and the value of every query
    option not known to be public is replaced by ``***``; the rest is kept character for
    character (``sqlite:///audit.db`` stays ``sqlite:///audit.db``). Never raises, whatever the
    text: it is used on URLs that failed to parse."""
    head, sep, rest = url.partition("://")
    if not sep:
        head, rest = "", url
    end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    netloc, tail = rest[:end], rest[end:]
    netloc = netloc.rpartition("@")[2]
    tail, hash_sep, fragment = tail.partition("#")
    path, query_sep, query = tail.partition("?")
    if query:
        query = "&".join(_redact_option(item) for item in query.split("&"))
    return f"{head}{sep}{netloc}{path}{query_sep}{query}{hash_sep}{fragment and HIDDEN}"


def _redact_option(item: str) -> str:
    name, eq, value = item.partition("=")
    if not eq or not value or unquote_plus(name) in _PUBLIC_OPTIONS:
        return item
    return f"{name}={HIDDEN}"


def url_secrets(url: str) -> list[str]:
    """The credentials a store URL carries (as written and decoded): what :func:`redact_url`
    removes, for scrubbing them out of any text that may quote the URL."""
    head, sep, rest = url.partition("://")
    rest = rest if sep else url
    end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    found: list[str] = []
    userinfo = rest[:end].rpartition("@")[0]
    if userinfo:
        found += [userinfo, *userinfo.split(":")]
    query = rest[end:].partition("#")[0].partition("?")[2]
    for item in query.split("&"):
        name, eq, value = item.partition("=")
        if eq and value and unquote_plus(name) not in _PUBLIC_OPTIONS:
            found.append(value)
    found += [unquote_plus(s) for s in found]
    # Longest first, so a part is never replaced inside a longer secret it belongs to.
    return sorted({s for s in found if len(s) >= 3}, key=len, reverse=True)


def scrub_url(text: str, url: str) -> str:
    """``text`` (an error message, a log line) with ``url`` and its credentials redacted."""
    text = text.replace(url, redact_url(url))
    for secret in url_secrets(url):
        text = text.replace(secret, HIDDEN)
    return text


def open_store(url: str, **options: Any) -> Any:
    """Open the store a URL names: ``sqlite:///audit.db``, ``tinybird://...``, ``http://...``.

    Errors never carry the URL's credentials (a bad ``tinybird://TOKEN@...`` is reported
    with the token redacted, and without the original exception chained to it)."""
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    target = SCHEMES.get(scheme)
    if target is None:
        known = ", ".join(f"{s}://" for s in SCHEMES)
        raise ValueError(f"unknown store URL {redact_url(url)!r}; use one of {known}")
    module_name, _, attr = target.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    try:
        return obj(url, **options)
    except Exception as exc:
        # Only a URL that carries credentials needs retelling; an error quoting a plain URL
        # (a damaged sqlite:/// file) keeps its own type, e.g. StoreDamaged.
        secrets = url_secrets(url)
        if not secrets or not any(s in text for text in _chain_texts(exc) for s in [url, *secrets]):
            raise
        # Told again, cut from its chain: a traceback prints every chained message too.
        raise _retold(exc, scrub_url(str(exc), url)) from None


def _chain_texts(exc: BaseException) -> list[str]:
    texts: list[str] = []
    seen: BaseException | None = exc
    while seen is not None and len(texts) < 20:
        texts.append(str(seen))
        seen = seen.__cause__ or seen.__context__
    return texts


def _retold(exc: Exception, message: str) -> Exception:
    """An exception of the same kind as ``exc`` saying ``message`` (ValueError if it cannot be)."""
    try:
        again = type(exc)(message)
    except Exception:
        return ValueError(message)
    return again if str(again) == message else ValueError(message)
