"""The Tinybird wire protocol, sans I/O: requests to make, how to read answers, when to retry.

The sync and the async store drive the same generators (:class:`Protocol`): a generator
yields :class:`Send` (make this HTTP request, send me the response or the transport error)
and :class:`Sleep` (wait this long), and returns its result. So retries, backoff, batching,
413 splitting and error mapping are written once.
"""

from __future__ import annotations

import gzip
import json
import random
import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from json.encoder import encode_basestring
from typing import Any
from urllib.parse import urlencode

import httpx

from .._errors import AuditError, StoreUnavailable
from ._tinybird_errors import (
    AuthenticationError,
    PartialIngest,
    QuarantinedRows,
    RequestRejected,
    ResourceNotFound,
    TinybirdError,
)
from .base import Row

__all__ = [
    "TinybirdError",
    "AuthenticationError",
    "ResourceNotFound",
    "RequestRejected",
    "PartialIngest",
    "QuarantinedRows",
    "RetryPolicy",
    "Protocol",
    "Send",
    "Sleep",
    "encode_line",
    "lookup_columns",
    "first_copies",
    "split_batches",
    "run_sync",
    "run_async",
    "MAX_REQUEST_BYTES",
]

# Tinybird accepts up to 10 MB per request (Free plan; larger plans more). Stay under it
# with room to spare, measured on the uncompressed body.
MAX_REQUEST_BYTES = 8 * 1024 * 1024
# Longer query strings go in a POST body: proxies and Tinybird refuse long URLs (414).
MAX_QUERY_STRING = 6_000
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
USER_AGENT = "auditbird (python; +https://github.com/auditbird)"


# -- encoding -----------------------------------------------------------------------------


# Characters a JSON string may hold raw that some readers take for a line break (str.splitlines(),
# JavaScript before ES2019): escaped, so no reader can split an NDJSON line inside a value. JSON's
# own encoder already escapes every control character below U+0020.
_LINE_BREAKS = {0x85: "\\u0085", 0x2028: "\\u2028", 0x2029: "\\u2029"}


def encode_line(row: Row) -> str:
    """One NDJSON line: the 9 row columns, JSON columns as JSON strings (as Tinybird stores them),
    and the look-up columns the datasource reads (``actor_id``, ``target_types``, ``target_ids``)."""
    actor_id, target_types, target_ids = lookup_columns(row)
    metadata = "null" if row[6] is None else encode_basestring(row[6])
    line = (
        f'{{"uid":{encode_basestring(row[0])},"workspace":{encode_basestring(row[1])},'
        f'"id":{encode_basestring(row[2])},"action":{encode_basestring(row[3])},'
        f'"actor":{encode_basestring(row[4])},"targets":{encode_basestring(row[5])},'
        f'"metadata":{metadata},"timestamp":{int(row[7])},"version":{int(row[8])},'
        f'"actor_id":{encode_basestring(actor_id)},'
        f'"target_types":[{",".join(map(encode_basestring, target_types))}],'
        f'"target_ids":[{",".join(map(encode_basestring, target_ids))}]}}'
    )
    return line if line.isascii() else line.translate(_LINE_BREAKS)


def lookup_columns(row: Row) -> tuple[str, list[str], list[str]]:
    """(actor id, target types, target ids) of a row, target i being (types[i], ids[i]); a
    target's type is its ``type``, else the seed's ``name`` (as the SQLite store reads it)."""
    try:
        actor = json.loads(row.actor)
    except ValueError:
        actor = None
    actor_id = actor.get("id") if isinstance(actor, dict) else None
    types: list[str] = []
    ids: list[str] = []
    if row.targets != "[]":
        try:
            targets = json.loads(row.targets)
        except ValueError:
            targets = []
        for t in targets if isinstance(targets, list) else []:
            if isinstance(t, dict):
                types.append(str(t.get("type") or t.get("name") or ""))
                ids.append(str(t.get("id", "")))
    return (actor_id if isinstance(actor_id, str) else "", types, ids)


def first_copies(lines: Sequence[str]) -> Sequence[str]:
    """``lines`` without the later copies of a (uid, workspace) already in them: the first copy wins
    (copies sent in one request would be stored at the same instant, with no first among them).
    A line's key is its text up to ``,"id":``, which :func:`encode_line` writes the same way for the
    same uid and workspace (and a JSON string cannot hold that unescaped)."""
    seen: set[str] = set()
    out: list[str] = []
    for line in lines:
        key = line[: line.find(',"id":')]
        if key not in seen:
            seen.add(key)
            out.append(line)
    return out if len(out) < len(lines) else lines


def split_batches(lines: Sequence[str], max_rows: int, max_bytes: int) -> list[Sequence[str]]:
    """Consecutive slices of ``lines``, each at most ``max_rows`` lines and ``max_bytes`` bytes."""
    batches: list[Sequence[str]] = []
    start, size = 0, 0
    for i, line in enumerate(lines):
        n = len(line) + 1 if line.isascii() else len(line.encode()) + 1
        if i > start and (i - start >= max_rows or size + n > max_bytes):
            batches.append(lines[start:i])
            start, size = i, 0
        size += n
    if start < len(lines):
        batches.append(lines[start:])
    return batches


def row_from_pipe(item: dict[str, Any]) -> Row:
    """A row as a pipe returns it: numbers may be strings, metadata may be '' for NULL."""

    def text(value: Any) -> str:
        return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))

    metadata = item.get("metadata")
    return Row(
        str(item["uid"]),
        str(item.get("workspace") or ""),
        str(item["id"]),
        str(item["action"]),
        text(item.get("actor") or '{"id":"","name":"system"}'),
        text(item.get("targets") or "[]"),
        None if metadata in (None, "") else text(metadata),
        int(item["timestamp"]),
        int(item.get("version") or 1),
    )


# -- retries ------------------------------------------------------------------------------


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter, honouring ``Retry-After``, bounded in time.

    A request is given up after ``max_retries`` retries or ``max_retry_time`` seconds since
    the first attempt, whichever comes first; each attempt's timeout shrinks to fit.
    """

    timeout: float = 10.0  # per attempt: connect, read, write
    max_retries: int = 8
    max_retry_time: float = 30.0
    backoff_base: float = 0.2
    backoff_cap: float = 10.0

    def backoff(self, attempt: int, retry_after: float | None) -> float:
        jitter = random.uniform(0, min(self.backoff_cap, self.backoff_base * 2 ** (attempt - 1)))
        return max(retry_after, jitter) if retry_after is not None else jitter


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if value is None and response.status_code == 429:
        value = response.headers.get("X-RateLimit-Reset")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


# -- the protocol -------------------------------------------------------------------------


@dataclass
class Send:
    method: str
    url: str
    params: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    content: bytes | None = None
    timeout: float = 10.0


@dataclass
class Sleep:
    seconds: float


Step = Send | Sleep
Exchange = Generator[Step, Any, Any]


class Protocol:
    """What to send to a Tinybird workspace and how to read its answers."""

    def __init__(
        self,
        host: str,
        token: str,
        datasource: str,
        *,
        retry: RetryPolicy,
        wait: bool = True,
        compress: bool = True,
        batch_rows: int = 50_000,
        max_request_bytes: int = MAX_REQUEST_BYTES,
    ) -> None:
        self.host = host.rstrip("/")
        self.datasource = datasource
        self.retry = retry
        self.wait = wait
        self.compress = compress
        self.batch_rows = batch_rows
        self.max_request_bytes = max_request_bytes
        self._headers = {"Authorization": f"Bearer {token}", "User-Agent": USER_AGENT}

    # -- requests with retries ------------------------------------------------------------

    def request(self, what: str, make: Callable[[float], Send]) -> Exchange:
        """Send ``make(timeout)`` until it gets a non-retryable answer; return that response."""
        policy = self.retry
        deadline = time.monotonic() + policy.max_retry_time
        attempt = 0
        while True:
            remaining = deadline - time.monotonic()
            result = yield make(max(0.5, min(policy.timeout, remaining)))
            retry_after: float | None = None
            if isinstance(result, httpx.Response):
                if result.status_code not in RETRY_STATUSES:
                    return result
                retry_after = _retry_after(result)
                reason = f"HTTP {result.status_code} {result.text.strip()[:200]!r}"
            else:
                reason = f"{type(result).__name__}: {result}" if str(result) else type(result).__name__
            attempt += 1
            delay = policy.backoff(attempt, retry_after)
            remaining = deadline - time.monotonic()
            if attempt > policy.max_retries or delay >= remaining:
                raise StoreUnavailable(
                    f"Tinybird at {self.host} did not answer {what} after {attempt} attempt(s) in "
                    f"{policy.max_retry_time - max(remaining, 0):.1f}s (last: {reason}); "
                    "it is safe to retry, events are de-duplicated by uid"
                )
            yield Sleep(delay)

    # -- writes ---------------------------------------------------------------------------

    def ingest(self, lines: Sequence[str]) -> Exchange:
        """Send NDJSON lines in batches within Tinybird's limits; raise on anything not stored.

        Every batch is sent even if an earlier one had quarantined rows, so a
        :class:`QuarantinedRows` error means: everything was delivered, some of it to quarantine.
        """
        successful = quarantined = 0
        for batch in split_batches(first_copies(lines), self.batch_rows, self.max_request_bytes):
            ok, bad = yield from self._ingest_batch(batch)
            successful, quarantined = successful + ok, quarantined + bad
        if quarantined:
            reasons = yield from self._quarantine_reasons(quarantined)
            raise QuarantinedRows(quarantined, successful, self.datasource, reasons)

    def _ingest_batch(self, batch: Sequence[str]) -> Exchange:
        body = ("\n".join(batch) + "\n").encode()
        headers = {**self._headers, "Content-Type": "application/x-ndjson"}
        if self.compress:
            body = gzip.compress(body, compresslevel=1, mtime=0)
            headers["Content-Encoding"] = "gzip"
        params = {"name": self.datasource, "wait": "true" if self.wait else "false"}
        url = f"{self.host}/v0/events"
        what = f"a write of {len(batch)} row(s) to {self.datasource}"
        response = yield from self.request(
            what, lambda t: Send("POST", url, params, headers, body, timeout=t)
        )
        status = response.status_code
        if status == 413 and len(batch) > 1:  # a smaller request limit than ours: halve and go on
            half = len(batch) // 2
            ok1, bad1 = yield from self._ingest_batch(batch[:half])
            ok2, bad2 = yield from self._ingest_batch(batch[half:])
            return ok1 + ok2, bad1 + bad2
        if status not in (200, 202):
            raise self.error(response, f"datasource {self.datasource!r}", what)
        try:
            answer = response.json()
        except ValueError:
            answer = {}
        quarantined = int(answer.get("quarantined_rows") or 0)
        return int(answer.get("successful_rows", len(batch) - quarantined) or 0), quarantined

    def _quarantine_reasons(self, count: int) -> Exchange:
        """The newest errors in ``<datasource>_quarantine``, best effort (the token may not read)."""
        sql = (
            f"SELECT c__error FROM {self.datasource}_quarantine "  # noqa: S608 - a validated identifier
            f"ORDER BY insertion_date DESC LIMIT {min(count, 5)} FORMAT JSON"
        )
        try:
            answer = yield from self.sql(sql)
        except (TinybirdError, StoreUnavailable) as exc:
            return [f"(reading {self.datasource}_quarantine failed: {exc})"]
        reasons: list[str] = []
        for item in answer.get("data", []):
            error = item.get("c__error")
            text = "; ".join(map(str, error)) if isinstance(error, list) else str(error)
            if text and text not in reasons:
                reasons.append(text)
        return reasons

    # -- reads ----------------------------------------------------------------------------

    def pipe(self, name: str, params: dict[str, str]) -> Exchange:
        """The ``data`` rows of ``GET /v0/pipes/<name>.json`` as :class:`Row`s.

        Parameters too long for a URL (a relay's list of uids) go in a JSON body with POST, as
        Tinybird takes them (it answers a long GET with 414); a server that takes no POST on pipes
        (405) is asked with GET after all."""
        url = f"{self.host}/v0/pipes/{name}.json"
        what = f"a read of pipe {name}"
        response = None
        if len(urlencode(params)) > MAX_QUERY_STRING:
            body = json.dumps(params).encode()
            headers = {**self._headers, "Content-Type": "application/json"}
            response = yield from self.request(
                what, lambda t: Send("POST", url, {}, headers, body, timeout=t)
            )
            if response.status_code == 405:
                response = None
        if response is None:
            response = yield from self.request(
                what, lambda t: Send("GET", url, params, self._headers, None, timeout=t)
            )
        if response.status_code != 200:
            raise self.error(response, f"pipe {name!r}", f"a read of pipe {name}")
        try:
            data = response.json()["data"]
            return [row_from_pipe(item) for item in data]
        except (ValueError, KeyError, TypeError) as exc:
            raise StoreUnavailable(
                f"pipe {name!r} at {self.host} answered something that is not audit rows ({exc}); "
                "push the shipped datafiles: `auditbird tinybird datafiles DIR` then `tb push`"
            ) from exc

    def sql(self, query: str) -> Exchange:
        url = f"{self.host}/v0/sql"
        response = yield from self.request(
            "an SQL query", lambda t: Send("GET", url, {"q": query}, self._headers, None, timeout=t)
        )
        if response.status_code != 200:
            raise self.error(response, "the SQL API", "an SQL query")
        return response.json()

    # -- errors ---------------------------------------------------------------------------

    def error(self, response: httpx.Response, resource: str, what: str) -> AuditError:
        """The exception for a final, non-retryable answer."""
        status = response.status_code
        detail = _detail(response)
        if status in (401, 403):
            return AuthenticationError(
                f"Tinybird at {self.host} rejected the token for {what} (HTTP {status}: {detail}); "
                "check TINYBIRD_TOKEN, the workspace's region, and that the token has "
                "DATASOURCE:APPEND on the datasource and READ on the pipes"
            )
        if status == 404:
            return ResourceNotFound(
                f"{resource} was not found at {self.host} (HTTP 404: {detail}); push the shipped "
                "datafiles (`auditbird tinybird datafiles DIR` then `tb push`), or check the region"
            )
        if status == 422:
            return PartialIngest(
                f"Tinybird stored only part of {what} (HTTP 422: {detail}); publishing the same "
                "events again is safe: they are de-duplicated by uid"
            )
        if status in (400, 413):
            return RequestRejected(f"Tinybird refused {what} (HTTP {status}: {detail}); nothing was stored")
        return StoreUnavailable(f"Tinybird at {self.host} answered {what} with HTTP {status}: {detail}")


def _detail(response: httpx.Response) -> str:
    text = response.text.strip()
    try:
        value = json.loads(text)
        if isinstance(value, dict) and "error" in value:
            text = str(value["error"])
    except ValueError:
        pass
    return text[:500] or response.reason_phrase


# -- drivers ------------------------------------------------------------------------------


def run_sync(client: httpx.Client, exchange: Exchange, sleep: Callable[[float], object] = time.sleep) -> Any:
    """Drive an exchange with a blocking client."""
    try:
        step = next(exchange)
        while True:
            if isinstance(step, Sleep):
                sleep(step.seconds)
                step = exchange.send(None)
                continue
            try:
                result: Any = client.request(
                    step.method,
                    step.url,
                    params=step.params,
                    headers=step.headers,
                    content=step.content,
                    timeout=step.timeout,
                )
            except httpx.TransportError as exc:
                result = exc
            step = exchange.send(result)
    except StopIteration as stop:
        return stop.value


async def run_async(client: httpx.AsyncClient, exchange: Exchange) -> Any:
    """Drive an exchange with an async client."""
    import asyncio

    try:
        step = next(exchange)
        while True:
            if isinstance(step, Sleep):
                await asyncio.sleep(step.seconds)
                step = exchange.send(None)
                continue
            try:
                result: Any = await client.request(
                    step.method,
                    step.url,
                    params=step.params,
                    headers=step.headers,
                    content=step.content,
                    timeout=step.timeout,
                )
            except httpx.TransportError as exc:
                result = exc
            step = exchange.send(result)
    except StopIteration as stop:
        return stop.value
