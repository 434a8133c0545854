"""The Tinybird store: the Events API for writes, the shipped pipes for reads (sync and async)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import httpx

from .._errors import UnsupportedOperation
from ..query import MAX_LIMIT, Query
from ..tinybird.config import Tinybird
from ._tinybird_http import (
    AuthenticationError,
    Exchange,
    PartialIngest,
    Protocol,
    QuarantinedRows,
    RequestRejected,
    ResourceNotFound,
    RetryPolicy,
    TinybirdError,
    encode_line,
    run_async,
    run_sync,
)
from .base import Row
from .capabilities import AsyncReplayStore, AsyncTwinStore, ReplayStore
from .spool import BufferedWriter, Spool
from .tinybird_seed import check_seed_rows, is_seed_datasource, read_seed

__all__ = [
    "TinybirdStore",
    "AsyncTinybirdStore",
    "TinybirdError",
    "AuthenticationError",
    "ResourceNotFound",
    "RequestRejected",
    "PartialIngest",
    "QuarantinedRows",
]

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_TRUE = {"1", "true", "yes", "on"}
# URL query options and how to read them.
_URL_OPTIONS: dict[str, Any] = {
    "buffered": lambda v: v.lower() in _TRUE,
    "wait": lambda v: v.lower() in _TRUE,
    "compress": lambda v: v.lower() in _TRUE,
    "batch_rows": int,
    "max_retries": int,
    "flush_interval": float,
    "timeout": float,
    "max_retry_time": float,
    "spool_path": str,
    "spool_synchronous": str,
}


def default_spool_path(tb: Tinybird) -> Path:
    """One spool per destination, under ``AUDITBIRD_SPOOL_DIR`` or ``~/.cache/auditbird``."""
    root = os.environ.get("AUDITBIRD_SPOOL_DIR") or Path.home() / ".cache" / "auditbird"
    digest = hashlib.sha256(f"{tb.host}|{tb.datasource}".encode()).hexdigest()[:16]
    return Path(root) / f"tinybird-{tb.datasource}-{digest}.spool"


class TinybirdStore(ReplayStore, AsyncTwinStore):
    """Events in a Tinybird datasource; reads through the shipped pipes.

    >>> store = TinybirdStore(Tinybird(token=os.environ["TINYBIRD_TOKEN"], host="us-east"))
    >>> log = AuditLog(store)                  # or AuditLog(tb=Tinybird(...)), the seed's shape
    >>> log = AuditLog("tinybird://p.eyJ...@api.us-east.tinybird.co")
    >>> log = AuditLog("tinybird+http://TOKEN@127.0.0.1:7181")  # `auditbird tinybird local`

    URLs: ``tinybird://TOKEN@HOST`` (HTTPS; HOST is an API host such as
    ``api.us-east.tinybird.co`` or a region name such as ``us-east``),
    ``tinybird://?token=TOKEN&region=us-east`` (the token defaults to ``TINYBIRD_TOKEN``, the
    host to ``TINYBIRD_HOST`` or the EU region), ``tinybird+http://TOKEN@127.0.0.1:7181`` (plain
    HTTP, for the local server) and ``tinybird+https://TOKEN@host:port``. Query options:
    ``datasource``, ``buffered``, ``batch_rows``, ``flush_interval``, ``spool_path``,
    ``timeout``, ``max_retries``, ``max_retry_time``, ``wait``, ``compress``.

    Writes go to the Events API as gzip-compressed NDJSON in batches of at most
    ``batch_rows`` rows and 8 MiB, with ``wait=true``: a returned ``append`` is acknowledged
    by the database. 429, 5xx, time-outs and connection errors are retried with exponential
    backoff and full jitter, honouring ``Retry-After``, for at most ``max_retries`` retries
    and ``max_retry_time`` seconds, after which :class:`StoreUnavailable` is raised. A rejected
    token raises :class:`AuthenticationError` at once; 400/404/422 are not retried either.
    Quarantined rows raise :class:`QuarantinedRows`, naming how many and why.

    ``buffered=True`` makes ``append`` return as soon as the rows are in a local SQLite spool
    (``spool_path``; durable, ``synchronous=FULL``); a background thread sends them when
    ``batch_rows`` are waiting or every ``flush_interval`` seconds, and on ``close()`` and at
    exit. Rows leave the spool only once Tinybird acknowledged them; a spool left by a crashed
    process, or filled during an outage, is sent when a store opens it again.

    Tinybird has no commit order: ``Query(order="position")`` raises
    :class:`UnsupportedOperation`. Reads use ``endpoint_<datasource>`` (a stream's history)
    and ``list_<datasource>`` (everything else), as shipped in ``auditbird.tinybird.datafiles``.
    """

    def __init__(
        self,
        tb: Tinybird,
        *,
        buffered: bool = False,
        batch_rows: int = 20_000,
        flush_interval: float = 1.0,
        spool_path: str | os.PathLike[str] | None = None,
        spool_synchronous: str = "FULL",
        timeout: float = 10.0,
        max_retries: int = 8,
        max_retry_time: float = 30.0,
        wait: bool = True,
        compress: bool = True,
    ) -> None:
        if not _IDENTIFIER.match(tb.datasource):
            raise ValueError(f"{tb.datasource!r} is not a Tinybird datasource name")
        if batch_rows < 1:
            raise ValueError("batch_rows must be at least 1")
        self.tb = tb
        self.seed = is_seed_datasource(tb.datasource)  # OpenStatus's audit_log__v0: see tinybird_seed
        self.host: str = tb.host or ""
        self.buffered = buffered
        self.protocol = Protocol(
            self.host,
            tb.token,
            tb.datasource,
            retry=RetryPolicy(timeout=timeout, max_retries=max_retries, max_retry_time=max_retry_time),
            wait=wait,
            compress=compress,
            batch_rows=batch_rows,
        )
        self.endpoint_pipe = f"endpoint_{tb.datasource}"
        self.list_pipe = f"list_{tb.datasource}"
        self._client: httpx.Client | None = None
        self.writer: BufferedWriter | None = None
        if buffered:
            path = Path(spool_path) if spool_path is not None else default_spool_path(tb)
            spool = Spool(
                path, destination=f"{self.host}/v0/events?name={tb.datasource}", synchronous=spool_synchronous
            )
            self.writer = BufferedWriter(
                spool, self._send_spooled, batch_rows=batch_rows, flush_interval=flush_interval
            )

    @classmethod
    def from_url(cls, url: str, **options: Any) -> TinybirdStore:
        """A store from ``tinybird://TOKEN@HOST``, ``tinybird://?token=..&region=..``,
        ``tinybird+http://TOKEN@127.0.0.1:7181`` (see the class docs); options override the URL's."""
        tb, url_options = parse_url(url)
        return cls(tb, **{**url_options, **options})

    # -- writes ---------------------------------------------------------------------------

    @property
    def client(self) -> httpx.Client:
        if self._client is None:
            self._client = httpx.Client(limits=httpx.Limits(max_keepalive_connections=4))
        return self._client

    def append(self, rows: Sequence[Row]) -> None:
        if not rows:
            return
        if self.seed:
            check_seed_rows(rows, self.tb.datasource)
        lines = [encode_line(row) for row in rows]
        if self.writer is not None:
            self.writer.append(lines)
        else:
            run_sync(self.client, self.protocol.ingest(lines))

    def _send_spooled(self, lines: Sequence[str], sleep: Any) -> None:
        run_sync(self.client, self.protocol.ingest(lines), sleep)

    def flush(self) -> None:
        """Buffered: send everything spooled now; raise if Tinybird cannot take it."""
        if self.writer is not None:
            self.writer.flush()

    def pending(self) -> int:
        """Buffered: rows in the spool not yet acknowledged by Tinybird."""
        return self.writer.spool.pending() if self.writer is not None else 0

    # -- reads ----------------------------------------------------------------------------

    def query(self, query: Query) -> list[Row]:
        if self.writer is not None:  # read your own writes
            self.writer.flush()
        rows: list[Row] = run_sync(self.client, read(self, query))
        return rows

    def stored_uids(self, workspace: str, uids: Sequence[str]) -> set[str]:
        """Which of ``uids`` are stored in ``workspace``: one pipe query for the whole list (the
        relay asks this of its in-doubt batch after a restart)."""
        if self.writer is not None:
            self.writer.flush()
        found: set[str] = set()
        wanted = sorted(set(uids))
        for start in range(0, len(wanted), MAX_LIMIT):
            chunk = wanted[start : start + MAX_LIMIT]
            params = {"ws": workspace, "uids": ",".join(chunk), "limit": str(len(chunk))}
            rows = run_sync(self.client, self.protocol.pipe(self.list_pipe, params))
            found.update(row.uid for row in rows)
        return found

    # -- lifecycle ------------------------------------------------------------------------

    def close(self) -> None:
        """Flush (buffered) and release connections; raises if spooled rows could not be sent."""
        try:
            if self.writer is not None:
                self.writer.close()
        finally:
            if self._client is not None:
                self._client.close()

    def __enter__(self) -> TinybirdStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def async_twin(self) -> AsyncTinybirdStore:
        """The same store with an :class:`httpx.AsyncClient` (for ``AsyncAuditLog``)."""
        return AsyncTinybirdStore(self)


class AsyncTinybirdStore(AsyncReplayStore):
    """The async twin of :class:`TinybirdStore`: ``append``, ``query`` and ``aclose`` coroutines.

    >>> async with AsyncAuditLog(tb=Tinybird(token=...)) as log: ...

    Buffered, ``append`` writes to the spool in a worker thread (a disk write) and the sync
    store's background thread sends; otherwise requests go through an ``httpx.AsyncClient``.
    """

    def __init__(self, store: TinybirdStore) -> None:
        self.sync = store
        self.protocol = store.protocol
        self._client = httpx.AsyncClient(limits=httpx.Limits(max_keepalive_connections=4))

    async def append(self, rows: Sequence[Row]) -> None:
        if not rows:
            return
        if self.sync.seed:
            check_seed_rows(rows, self.sync.tb.datasource)
        if self.sync.writer is not None:
            await asyncio.to_thread(self.sync.append, rows)
        else:
            await run_async(self._client, self.protocol.ingest([encode_line(row) for row in rows]))

    async def query(self, query: Query) -> list[Row]:
        if self.sync.writer is not None:
            await asyncio.to_thread(self.sync.writer.flush)
        rows: list[Row] = await run_async(self._client, read(self.sync, query))
        return rows

    async def flush(self) -> None:
        await asyncio.to_thread(self.sync.flush)

    async def aclose(self) -> None:
        try:
            await asyncio.to_thread(self.sync.close)
        finally:
            await self._client.aclose()

    async def __aenter__(self) -> AsyncTinybirdStore:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


# -- reads: Query -> pipe parameters --------------------------------------------------------


def read(store: TinybirdStore, q: Query) -> Exchange:
    """The rows for ``q``, page by page (a pipe answers at most MAX_LIMIT rows at once)."""
    if store.seed:
        return (yield from read_seed(store, q))
    if q.order == "position":
        raise UnsupportedOperation(
            "Tinybird keeps no commit position: read in timestamp order (order='desc' or 'asc') "
            "with a cursor, or use the SQLite store for commit-order reads"
        )
    stream_only = (
        q.event_id is not None
        and q.order == "desc"
        and q.after is None
        and not (q.actions or q.text or q.uid)
        and all(v is None for v in (q.actor_id, q.target_type, q.target_id, q.since, q.until))
    )
    rows: list[Row] = []
    # The pipes return a uid once; this guards reads against datafiles that only collapse
    # duplicates sharing the whole sorting key (a re-published event may carry a new timestamp).
    seen: set[str] = set()
    after = q.after
    while True:
        size = MAX_LIMIT if q.limit is None else min(MAX_LIMIT, q.limit - len(rows))
        if stream_only and not rows:
            params = {"event_id": q.event_id or "", "ws": q.workspace, "limit": str(size)}
            page = yield from store.protocol.pipe(store.endpoint_pipe, params)
        else:
            page = yield from store.protocol.pipe(store.list_pipe, list_params(q, after, size))
        for row in page:
            if row.uid not in seen:
                seen.add(row.uid)
                rows.append(row)
        if len(page) < size or (q.limit is not None and len(rows) >= q.limit):
            return rows
        after = (page[-1].timestamp, page[-1].uid)


def list_params(q: Query, after: tuple[int, str] | None, limit: int) -> dict[str, str]:
    """``list_<datasource>`` parameters: values are sent as given; the pipe quotes them.

    No parameter is named like a column (``ws``, not ``workspace``; ``actor_is``, ``uids``)."""
    params = {"ws": q.workspace, "order": q.order, "limit": str(limit)}
    optional = {
        "event_id": q.event_id,
        "actions": ",".join(q.actions) if q.actions else None,
        "actor_is": q.actor_id,
        "target_type": q.target_type,
        "target_id": q.target_id,
        "since": None if q.since is None else str(q.since),
        "until": None if q.until is None else str(q.until),
        "text": q.text or None,  # '' filters nothing, as on every store
        "uids": q.uid,  # a uid holds no comma (event.py's key pattern)
    }
    params.update({k: v for k, v in optional.items() if v is not None})
    if after is not None:
        params["after_ts"], params["after_uid"] = str(after[0]), after[1]
    return params


# -- URLs -----------------------------------------------------------------------------------


def parse_url(url: str) -> tuple[Tinybird, dict[str, Any]]:
    """``tinybird[+http|+https]://[TOKEN@][HOST][?token=..&region=..&datasource=..&option=..]``."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in {"tinybird", "tinybird+http", "tinybird+https"}:
        raise ValueError(f"{url!r} is not a tinybird:// URL")
    query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
    userinfo, _, hostport = parts.netloc.rpartition("@")
    token = unquote(userinfo) or query.pop("token", "") or os.environ.get("TINYBIRD_TOKEN", "")
    query.pop("token", None)
    region = query.pop("region", None) or query.pop("host", None)
    if hostport and region:
        raise ValueError(f"{url!r} names both a host and a region; use one")
    host: str | None = hostport or region
    if scheme != "tinybird":
        if not hostport:
            raise ValueError(
                f"{url!r}: {scheme}:// needs a host and port, e.g. {scheme}://TOKEN@127.0.0.1:7181"
            )
        host = f"{scheme.split('+', 1)[1]}://{hostport}"
    if not token:
        raise ValueError(
            f"{url!r} carries no token: use tinybird://TOKEN@HOST, ?token=..., or set TINYBIRD_TOKEN"
        )
    datasource = query.pop("datasource", "audit_log")
    options: dict[str, Any] = {}
    for key, value in query.items():
        if key not in _URL_OPTIONS:
            known = ", ".join(["token", "region", "datasource", *_URL_OPTIONS])
            raise ValueError(f"unknown option {key!r} in the Tinybird URL; known: {known}")
        options[key] = _URL_OPTIONS[key](value)
    return Tinybird(token=token, host=host, datasource=datasource), options
