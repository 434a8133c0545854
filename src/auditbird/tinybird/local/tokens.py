"""Tokens as Tinybird has them, and the local server's boundary with the browser next to it.

- An admin token (``ADMIN``: everything) and static tokens with Tinybird's scopes:
  ``PIPES:READ:<pipe>``, ``DATASOURCES:READ:<ds>``, ``DATASOURCES:APPEND:<ds>``. A read token
  reads its pipes (and, through ``/v0/sql``, only the resources it may read); it cannot write,
  list or read any other datasource. Created tokens are kept as SHA-256 digests only.
- Every request's ``Host`` must name this machine: ``localhost``, an IP address, or the address
  the server is bound to. A web page that rebinds its own DNS name to 127.0.0.1 sends its own
  name as the Host, and is refused.
- ``GET /tokens`` (how Tinybird Local hands its tokens to the CLI) answers only callers on this
  machine, and never a browser request from another origin (``Origin`` or ``Sec-Fetch-Site``);
  it sends no CORS headers.
- No token reaches a log line: the access log writes URLs with ``token=`` redacted, and a log
  filter masks every token value the server knows.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

__all__ = [
    "Token",
    "TokenStore",
    "ScopeError",
    "parse_scope",
    "host_allowed",
    "is_loopback",
    "cross_origin",
    "redact_uri",
    "log_request",
]

ADMIN = "ADMIN"
SCOPE_KINDS = frozenset({"ADMIN", "PIPES:READ", "DATASOURCES:READ", "DATASOURCES:APPEND"})
REDACTED = "[redacted]"


class ScopeError(ValueError):
    """A scope Tinybird does not have, or one naming no resource."""


def parse_scope(text: str) -> tuple[str, str]:
    """``'PIPES:READ:p'`` -> ``('PIPES:READ', 'p')``; ``'ADMIN'`` -> ``('ADMIN', '')``."""
    if text == ADMIN:
        return ADMIN, ""
    kind, _, resource = text.rpartition(":")
    if kind not in SCOPE_KINDS or kind == ADMIN or not resource:
        raise ScopeError(
            f"unknown scope {text!r}: use ADMIN, PIPES:READ:<pipe>, DATASOURCES:READ:<datasource> "
            "or DATASOURCES:APPEND:<datasource>"
        )
    return kind, resource


@dataclass(frozen=True)
class Token:
    name: str
    scopes: frozenset[tuple[str, str]]

    @property
    def admin(self) -> bool:
        return (ADMIN, "") in self.scopes

    def can(self, kind: str, resource: str) -> bool:
        return self.admin or (kind, resource) in self.scopes

    def readable(self, datasources: Iterable[str], pipes: Iterable[str]) -> set[str]:
        """The names a ``/v0/sql`` query with this token may read."""
        out = {p for p in pipes if self.can("PIPES:READ", p)}
        for ds in datasources:
            if self.can("DATASOURCES:READ", ds):
                out |= {ds, f"{ds}_quarantine"}
        return out

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "scopes": [{"type": k, "resource": r} if r else {"type": k} for k, r in sorted(self.scopes)],
        }


def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).digest()


class TokenStore:
    """The server's tokens. The admin token's value is kept (``GET /tokens`` hands it to local
    callers, as Tinybird Local does); every other token only as a digest."""

    def __init__(self, admin_token: str) -> None:
        self.admin_token = admin_token
        self._by_digest: dict[bytes, Token] = {
            _digest(admin_token): Token("admin token", frozenset({(ADMIN, "")}))
        }
        self._secrets: set[str] = {admin_token}  # only for masking log lines, never answered

    def create(self, name: str, scopes: Iterable[str]) -> str:
        """A new static token; its value is returned once."""
        parsed = frozenset(parse_scope(s) for s in scopes)
        if not parsed:
            raise ScopeError("a token needs at least one scope, e.g. scope=PIPES:READ:<pipe>")
        if not name or len(name) > 200:
            raise ScopeError("a token needs a name (at most 200 characters)")
        value = "p." + secrets.token_urlsafe(32)
        self._by_digest[_digest(value)] = Token(name, parsed)
        self._secrets.add(value)
        return value

    def lookup(self, value: str | None) -> Token | None:
        if not value:
            return None
        # The digest of what was given is looked up, so no comparison runs over a secret's bytes.
        return self._by_digest.get(_digest(value))

    def tokens(self) -> list[Token]:
        return list(self._by_digest.values())

    def mask(self, text: str) -> str:
        for value in self._secrets:
            if value and value in text:
                text = text.replace(value, REDACTED)
        return text


def given_token(headers: Mapping[str, str], query_token: str | None) -> str | None:
    """The token of a request: ``Authorization: Bearer`` first, else ``?token=``."""
    header = headers.get("Authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return query_token


# -- the browser next to the server -------------------------------------------------------------


def _hostname(host_header: str) -> str:
    host = host_header.strip().lower()
    if host.startswith("["):  # [::1]:7181
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def host_allowed(host_header: str | None, bound: str) -> bool:
    """Whether a request's Host names this server: ``localhost``, a loopback address, or the address
    it is bound to (any IP address when bound to all interfaces: an address cannot be rebound).

    A DNS-rebinding page reaches 127.0.0.1 under its own name, and the browser sends that name.
    """
    if not host_header:
        return False
    name = _hostname(host_header)
    if name in {"localhost", _hostname(bound)} or name.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False
    return address.is_loopback or _hostname(bound) in {"0.0.0.0", "::", ""}


def is_loopback(remote_ip: str | None) -> bool:
    try:
        return ipaddress.ip_address(remote_ip or "").is_loopback
    except ValueError:
        return False


def cross_origin(headers: Mapping[str, str], host_header: str | None) -> bool:
    """Whether a browser sent this request from another origin (or we cannot tell that it did not)."""
    fetch_site = headers.get("Sec-Fetch-Site")
    if fetch_site is not None and fetch_site.lower() not in {"same-origin", "none"}:
        return True
    origin = headers.get("Origin")
    if origin is None:
        return False
    parts = urlsplit(origin)
    return origin == "null" or (parts.netloc or "").lower() != (host_header or "").lower()


# -- logs -------------------------------------------------------------------------------------------


def redact_uri(uri: str) -> str:
    """``/v0/sql?q=1&token=p.x`` -> ``/v0/sql?q=1&token=[redacted]``."""
    parts = urlsplit(uri)
    if not parts.query:
        return uri
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    if not any(k.lower() == "token" for k, _ in pairs):
        return uri
    query = urlencode([(k, REDACTED if k.lower() == "token" else v) for k, v in pairs], safe="[]")
    return urlunsplit(parts._replace(query=query))


_access_log = logging.getLogger("tornado.access")


def log_request(handler: Any) -> None:
    """Tornado's access log line (``Application(log_function=...)``) with the URL redacted."""
    status = handler.get_status()
    level = logging.INFO if status < 400 else logging.WARNING if status < 500 else logging.ERROR
    request = handler.request
    _access_log.log(
        level,
        "%d %s %s (%s) %.2fms",
        status,
        request.method,
        redact_uri(request.uri or ""),
        request.remote_ip,
        1000.0 * request.request_time(),
    )


class MaskTokens(logging.Filter):
    """Masks every token value the store knows in a record's final message."""

    def __init__(self) -> None:
        super().__init__()
        self.stores: list[TokenStore] = []

    def mask(self, text: str) -> str:
        for store in self.stores:
            text = store.mask(text)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = self.mask(message)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and not record.exc_text:
            record.exc_text = self.mask(logging.Formatter().formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = self.mask(record.exc_text)
        return True


_MASK = MaskTokens()


def install_log_masking(store: TokenStore) -> None:
    """Mask ``store``'s tokens in every record of the loggers Tornado and asyncio write to."""
    if store not in _MASK.stores:
        _MASK.stores.append(store)
    for name in ("tornado.access", "tornado.application", "tornado.general", "asyncio"):
        logger = logging.getLogger(name)
        if _MASK not in logger.filters:
            logger.addFilter(_MASK)
