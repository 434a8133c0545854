"""Administering a workspace's streams: the functions the CLI and the service's admin API share.

    stream, secret = create_stream("sqlite:///audit.db", "acme", "siem",
                                   StreamTarget.webhook("https://siem.example/hook"))
    for status in stream_statuses("sqlite:///audit.db", "acme"):
        print(status.stream.name, status.events_behind, status.seconds_behind)

Everything here is scoped to one workspace: a name is looked up in that workspace only, so
another workspace's stream is indistinguishable from a stream that does not exist.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..relay import PositionTable
from ..row import Row
from .config import Stream, StreamRegistry, new_secret
from .filter import StreamFilter
from .ndjson_file import parse_every

__all__ = [
    "MAX_STREAMS_PER_WORKSPACE",
    "LAG_SCAN_LIMIT",
    "LAG_SCAN_BUDGET",
    "StreamTarget",
    "StreamStatus",
    "create_stream",
    "stream_statuses",
    "stream_lag",
]

# Headers that frame or route the request: httpx sets them; a second copy from a stream's
# settings could smuggle a request or send it to another virtual host.
_RESERVED_HEADERS = frozenset(
    (
        "host",
        "content-length",
        "transfer-encoding",
        "content-type",
        "connection",
        "te",
        "upgrade",
        "keep-alive",
        "trailer",
        "expect",
        "proxy-authorization",
        "proxy-connection",
    )
)
MAX_STREAMS_PER_WORKSPACE = 100  # each one is a thread in the runner: bound what a workspace adds
LAG_SCAN_LIMIT = 10_000  # committed rows read past a position to count a lag; beyond it, "at least"
LAG_SCAN_BUDGET = 50_000  # rows one status read scans for all its streams together


@dataclass(frozen=True)
class StreamTarget:
    """Where a stream delivers: its kind and options, checked before anything is stored."""

    kind: str
    options: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def webhook(cls, url: str, *, secret: str | None = None, batched: bool = False) -> StreamTarget:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"webhook url {url!r}: use an http:// or https:// URL with a host")
        secret = secret or new_secret()
        from .webhook import _webhook

        try:
            _webhook(secret)  # a malformed secret fails now, not at every delivery
        except RuntimeError:  # the extra is missing: its message says how to install it
            raise
        except Exception as exc:  # the package's own errors for a malformed secret
            raise ValueError(f"webhook secret: {exc} (use whsec_ and base64, or leave it out)") from None
        return cls("webhook", {"url": url, "secret": secret, "batched": batched})

    @classmethod
    def syslog(cls, address: str, *, ca_file: str | None = None) -> StreamTarget:
        parts = urlsplit(address)
        try:
            port = parts.port
        except ValueError:
            port = None
        if parts.scheme not in ("tcp", "tls") or not parts.hostname or not port:
            raise ValueError(
                f"syslog address {address!r}: use tcp://HOST:PORT (RFC 5424 over TCP) or tls://HOST:PORT"
            )
        if ca_file is not None and not Path(ca_file).is_file():
            raise ValueError(
                f"ca file {ca_file!r}: no such file; give the PEM of the CA that signed the server"
            )
        tls = parts.scheme == "tls"
        return cls("syslog", {"host": parts.hostname, "port": port, "tls": tls, "ca_file": ca_file})

    @classmethod
    def otlp(cls, url: str, *, headers: Mapping[str, str] | None = None) -> StreamTarget:
        """OTLP/HTTP logs to a collector's base URL (``/v1/logs`` is added) with ``headers``
        (an API key the collector wants: kept like a webhook secret, never listed)."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"OTLP url {url!r}: use the collector's http:// or https:// URL")
        headers = dict(headers or {})
        if len(headers) > 20:
            raise ValueError("OTLP headers: at most 20")
        for name, value in headers.items():
            # A header name is an RFC 9110 token; a value has no line breaks (no header injection).
            if not name or not all(c.isalnum() or c in "!#$%&'*+-.^_`|~" for c in name) or len(name) > 100:
                raise ValueError(f"OTLP header name {name!r}: use letters, digits and -")
            if name.lower() in _RESERVED_HEADERS:
                raise ValueError(
                    f"OTLP header {name!r} is set by the exporter itself; give only the headers "
                    "the collector asks for (e.g. Authorization, X-Api-Key)"
                )
            if any(c in value for c in "\r\n\0") or len(value) > 4_096:
                raise ValueError(
                    f"OTLP header {name!r}: the value must be one line of at most 4096 characters"
                )
        options: dict[str, Any] = {"url": url}
        if headers:
            options["secret_headers"] = headers
        return cls("otlp", options)

    @classmethod
    def ndjson(
        cls,
        path: str,
        *,
        max_bytes: int = 100 * 1024 * 1024,
        keep: int = 5,
        rotate_every: str | None = None,
    ) -> StreamTarget:
        if not path:
            raise ValueError("ndjson path: give the file to append to, e.g. /var/log/audit.ndjson")
        if max_bytes < 1_024:
            raise ValueError("max_bytes: rotate at 1024 bytes or more")
        if not 1 <= keep <= 1_000:
            raise ValueError("keep: keep 1 to 1000 rotated files")
        options: dict[str, Any] = {"path": path, "max_bytes": max_bytes, "keep": keep}
        if rotate_every:
            options["rotate_every"] = parse_every(rotate_every)
        return cls("ndjson", options)


def create_stream(
    store_url: str,
    workspace: str,
    name: str,
    target: StreamTarget,
    *,
    filter: StreamFilter | None = None,
    max_attempts: int = 5,
    from_now: bool = False,
    origin: str = "operator",
) -> Stream:
    """Add a stream to ``workspace``; ``from_now`` starts it after what is already committed.
    ``origin``: "api" for a stream an API key added (each connection then passes the egress
    rule, ``AUDITBIRD_STREAM_HOSTS``), "operator" for the operator's own (CLI, library).

    Raises ValueError naming what is wrong (a bad name, a duplicate, too many streams)."""
    from ..stores.sqlite import SQLiteStore

    with StreamRegistry.for_store(store_url) as registry:
        if len(registry.list(workspace)) >= MAX_STREAMS_PER_WORKSPACE:
            raise ValueError(
                f"workspace {workspace!r} has {MAX_STREAMS_PER_WORKSPACE} streams, the most it may have; "
                "remove one first"
            )
        stream = registry.add(
            name,
            workspace=workspace,
            kind=target.kind,
            options=target.options,
            filter=filter,
            max_attempts=max_attempts,
            origin=origin,
        )
    if from_now:
        store = SQLiteStore.from_url(store_url)
        try:
            positions = PositionTable(store.path, stream.position_name)
            try:
                positions.save(store.last_position())
            finally:
                positions.close()
        finally:
            store.close()
    return stream


@dataclass(frozen=True)
class StreamStatus:
    """A stream and how far behind the log it is.

    ``events_behind``: committed events of its workspace that match its filter and are past
    its position (at least this many when ``behind_capped``); ``seconds_behind``: the age of
    the oldest of them, by its timestamp (0 when caught up)."""

    stream: Stream
    position: int
    events_behind: int
    behind_capped: bool
    seconds_behind: float

    def to_dict(self) -> dict[str, Any]:
        """The public view: no secret, no credential in a URL."""
        s = self.stream
        return {
            "name": s.name,
            "kind": s.kind,
            "options": s.public_options(),
            "filter": s.filter.describe(),
            "max_attempts": s.max_attempts,
            "paused": s.paused,
            "created_at": s.created_at,
            "delivered": s.delivered,
            "events_behind": self.events_behind,
            "behind_capped": self.behind_capped,
            "seconds_behind": round(self.seconds_behind, 3),
            "last_delivery_at": s.last_delivery_at,
            "last_error": s.last_error,
            "last_error_at": s.last_error_at,
            "failures": s.failures,
            "dead_letters": s.dead_letters,
        }


def stream_lag(
    store: Any, stream: Stream, position: int, *, limit: int = LAG_SCAN_LIMIT
) -> tuple[int, bool, float]:
    """``(events_behind, capped, seconds_behind)`` of ``stream`` at ``position``: reads at most
    ``limit`` committed rows past it (bounded time however far behind it is)."""
    behind, oldest, read = 0, None, 0
    after = position
    while read < limit:
        rows: list[Row] = store.read_committed(after, min(1_000, limit - read))
        if not rows:
            break
        read += len(rows)
        for r in rows:
            if r.workspace == stream.workspace and stream.filter.matches(r):
                behind += 1
                oldest = r.timestamp if oldest is None else oldest
        after = rows[-1].position or after
    capped = read >= limit and bool(store.read_committed(after, 1))
    seconds = max(0.0, time.time() - oldest / 1000) if oldest is not None else 0.0
    return behind, capped, seconds


class _Counting:
    """The store as :func:`stream_lag` reads it, counting the rows read (the shared budget)."""

    def __init__(self, store: Any) -> None:
        self.store, self.rows = store, 0

    def read_committed(self, after: int, limit: int) -> list[Row]:
        rows: list[Row] = self.store.read_committed(after, limit)
        self.rows += len(rows)
        return rows


def stream_statuses(
    store_url: str,
    workspace: str | None,
    names: Sequence[str] = (),
    *,
    store: Any = None,
    scan_limit: int = LAG_SCAN_LIMIT,
    scan_budget: int = LAG_SCAN_BUDGET,
) -> list[StreamStatus]:
    """The streams of ``workspace`` (every workspace's for None), with their lag; ``store``:
    the SQLite store of ``store_url`` when the caller has it open (the service). Each stream's
    count reads at most ``scan_limit`` rows, all of them together about ``scan_budget``."""
    from ..stores.sqlite import SQLiteStore

    with StreamRegistry.for_store(store_url) as registry:
        streams = [s for s in registry.list(workspace) if not names or s.name in names]
    if not streams:
        return []
    owned = store is None
    if owned:
        store = SQLiteStore.from_url(store_url)
    try:
        positions: dict[int, int] = {}
        for s in streams:
            table = PositionTable(store.path, s.position_name)
            try:
                positions[s.id] = table.load()
            finally:
                table.close()
        # One read of the statuses (a page, a /metrics refresh) scans at most ``scan_budget``
        # rows in all, however many streams lag: the streams nearest the end go first (a
        # caught-up stream costs one empty read), and a stream left without budget gets a
        # one-row look, enough to say "caught up" or "at least 1 behind".
        lags: dict[int, tuple[int, bool, float]] = {}
        budget = scan_budget
        for s in sorted(streams, key=lambda s: -positions[s.id]):
            limit = max(1, min(scan_limit, budget))
            counting = _Counting(store)
            lags[s.id] = stream_lag(counting, s, positions[s.id], limit=limit)
            budget = max(0, budget - counting.rows)
        out = [StreamStatus(s, positions[s.id], *lags[s.id]) for s in streams]
    finally:
        if owned:
            store.close()
    return out
