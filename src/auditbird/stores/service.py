"""The service as a store: ``AuditLog("http://127.0.0.1:8000", api_key="ab_...")``.

Applications in other processes use the API they use locally; validation still happens on
both sides (here, so errors name fields before a round trip; there, because a server never
trusts a client). The key decides the workspace: a log without ``workspace=`` reads and
writes the key's own, and a log that names one must name the key's.

>>> log = AuditLog("http://127.0.0.1:8000", api_key=os.environ["AUDITBIRD_API_KEY"])
>>> log.publish_audit_log({"id": "monitor:1", "action": "monitor.down"})
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

import httpx
from pydantic_core import from_json

from .._errors import (
    AuditError,
    AuditValidationError,
    AuthenticationError,
    ConflictError,
    Problem,
    StoreUnavailable,
    UnsupportedOperation,
)
from ..query import Query, encode_cursor
from ..row import Row, row_from_json, row_to_wire
from .capabilities import AsyncStoredCopyStore, AsyncTwinStore, StoredCopyStore

__all__ = ["ServiceStore", "AsyncServiceStore"]

PAGE = 1_000  # the API's largest page


class _Common:
    def __init__(self, url: str, api_key: str | None, timeout: float) -> None:
        self.url = url.rstrip("/")
        self.api_key = api_key if api_key is not None else os.environ.get("AUDITBIRD_API_KEY")
        if not self.api_key:
            raise AuditError(
                f"{self.url} needs an API key: AuditLog(url, api_key='ab_...') or AUDITBIRD_API_KEY "
                "(create one with `auditbird keys create --workspace W --scope admin`)"
            )
        self.timeout = timeout
        self.headers = {"Authorization": f"Bearer {self.api_key}", "User-Agent": "auditbird-python"}

    @staticmethod
    def _append_request(rows: Sequence[Row]) -> tuple[bytes, dict[str, str]]:
        # A row without a workspace is sent without one, so the server files it in the key's,
        # and the full answer (the events as stored) tells which. When every row names its
        # workspace, `Prefer: return=minimal`: the answer is the count plus only the rows not
        # stored as sent (`kept`: a re-published uid's first copy), not every event again.
        body = "[" + ",".join(row_to_wire(r, omit_empty_workspace=True) for r in rows) + "]"
        headers = {"Content-Type": "application/json"}
        if all(r.workspace for r in rows):
            headers["Prefer"] = "return=minimal"
        return body.encode(), headers

    def _kept(self, rows: Sequence[Row], response: httpx.Response) -> dict[int, Row]:
        """The rows the service did not store as sent, by index, as it answered them: the first
        copy of a uid it already held, and the workspace of the key for a row sent without one."""
        self._raise_for(response)
        answer = from_json(response.content)
        if "data" not in answer:  # the minimal answer: only what was not stored as sent
            return {int(k["index"]): row_from_json(k["event"]) for k in answer.get("kept") or []}
        answered = answer.get("data") or []
        kept: dict[int, Row] = {}
        for i, (sent, item) in enumerate(zip(rows, answered, strict=False)):
            if _same_content(sent, item):  # the common case: compared parsed, never re-encoded
                workspace = item.get("workspace", "")
                if workspace != sent.workspace:
                    kept[i] = sent._replace(workspace=workspace)
            else:
                kept[i] = row_from_json(item)
        return kept

    @staticmethod
    def _params(q: Query, cursor: str | None, limit: int) -> dict[str, Any]:
        """GET /v1/events parameters for a query."""
        if q.order == "position" or q.after_position is not None:
            raise UnsupportedOperation(
                "the service reads in time order only (order='desc' or 'asc'), not commit position"
            )
        params: dict[str, Any] = {"limit": limit}
        if q.workspace:  # "" (a log without workspace=): the key's workspace, which the server knows
            params["workspace"] = q.workspace
        for name in ("event_id", "actor_id", "target_type", "target_id", "since", "until", "text"):
            value = getattr(q, name)
            if value is not None:
                params[name] = value
        if q.actions:
            params["action"] = list(q.actions)
        if q.order != "desc":
            raise UnsupportedOperation("the service lists newest first only (order='desc')")
        if cursor:
            params["cursor"] = cursor
        return params

    @staticmethod
    def _start_cursor(q: Query) -> str | None:
        return encode_cursor(*q.after) if q.after is not None else None

    @staticmethod
    def _matches(q: Query, row: Row) -> bool:
        """Filters besides the uid, for a uid look-up that also carries some (rare)."""
        return (q.event_id is None or row.id == q.event_id) and (not q.actions or row.action in q.actions)

    @staticmethod
    def _uid_path(uid: str) -> str:
        return f"/v1/events/{quote(uid, safe='')}"

    def _one(self, q: Query, response: httpx.Response) -> list[Row]:
        """The answer to ``GET /v1/events/{uid}`` as the query's rows."""
        if response.status_code == 404:
            return []
        self._raise_for(response)
        row = row_from_json(response.json())
        return [row] if self._matches(q, row) else []

    def _page_params(self, q: Query, cursor: str | None, rows: list[Row]) -> dict[str, Any]:
        want = PAGE if q.limit is None else min(PAGE, q.limit - len(rows))
        return self._params(q, cursor, want)

    def _take_page(self, q: Query, response: httpx.Response, rows: list[Row]) -> str | None:
        """Add a page's rows to ``rows``; the cursor of the next page, or None when done."""
        self._raise_for(response)
        page = response.json()
        rows.extend(row_from_json(item) for item in page["data"])
        cursor: str | None = page.get("next_cursor")
        if cursor is None or (q.limit is not None and len(rows) >= q.limit):
            return None
        return cursor

    def _raise_for(self, response: httpx.Response) -> None:
        if response.status_code < 400:
            return
        try:
            problem = response.json()
        except ValueError:
            problem = {}
        detail = problem.get("detail") or response.text[:300] or response.reason_phrase
        where = f"{response.request.method} {response.request.url.path}"
        status = response.status_code
        if status in (400, 413, 422):
            errors = problem.get("errors") or []
            problems = [
                Problem(str(e.get("loc", "")), str(e.get("msg", "")), e.get("index")) for e in errors
            ] or [Problem("", str(detail))]
            raise AuditValidationError(problems, write=response.request.method == "POST")
        if status == 401:
            raise AuthenticationError(f"{where}: the service refused the API key ({detail})")
        if status == 403:
            raise AuthenticationError(f"{where}: the API key may not do this ({detail})")
        if status == 409:
            raise ConflictError(str(detail))
        if status == 429:
            wait = response.headers.get("Retry-After", "1")
            raise StoreUnavailable(f"{where}: rate limited; retry after {wait}s")
        if status == 501:
            raise UnsupportedOperation(str(detail))
        if status >= 500:
            raise StoreUnavailable(f"{where}: the service answered {status}: {detail}")
        raise AuditError(f"{where}: the service answered {status}: {detail}")


def _same_content(sent: Row, item: dict[str, Any]) -> bool:
    """Whether the service's answer holds what was sent, the workspace aside."""
    return (
        item.get("uid") == sent.uid
        and item.get("id") == sent.id
        and item.get("action") == sent.action
        and item.get("timestamp") == sent.timestamp
        and item.get("version", 1) == sent.version
        and item.get("metadata") == (None if sent.metadata is None else from_json(sent.metadata))
        and (item.get("targets") or []) == from_json(sent.targets or "[]")
        and item.get("actor") == from_json(sent.actor or "{}")
    )


class ServiceStore(_Common, AsyncTwinStore, StoredCopyStore):
    """A :class:`~auditbird.stores.base.Store` over the auditbird REST API (httpx, keep-alive)."""

    def __init__(self, url: str, *, api_key: str | None = None, timeout: float = 30.0) -> None:
        super().__init__(url, api_key, timeout)
        self._client = httpx.Client(base_url=self.url, headers=self.headers, timeout=timeout)

    @classmethod
    def from_url(cls, url: str, **options: Any) -> ServiceStore:
        return cls(url, **options)

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise StoreUnavailable(f"cannot reach {self.url}: {exc}") from exc
        return response

    def append(self, rows: Sequence[Row]) -> dict[int, Row]:
        """Send ``rows``; the service answers them as stored, and the ones that differ from
        what was sent (a re-published uid's first copy, the key's workspace) come back by index."""
        if not rows:
            return {}
        body, headers = self._append_request(rows)
        return self._kept(rows, self._send("POST", "/v1/events", content=body, headers=headers))

    def query(self, query: Query) -> list[Row]:
        if query.uid is not None:
            return self._one(query, self._send("GET", self._uid_path(query.uid)))
        rows: list[Row] = []
        cursor = self._start_cursor(query)
        while True:
            response = self._send("GET", "/v1/events", params=self._page_params(query, cursor, rows))
            cursor = self._take_page(query, response, rows)
            if cursor is None:
                return rows

    def close(self) -> None:
        self._client.close()

    def async_twin(self) -> AsyncServiceStore:
        """The same service through an ``httpx.AsyncClient`` (used by :class:`AsyncAuditLog`)."""
        return AsyncServiceStore(self.url, api_key=self.api_key, timeout=self.timeout)

    def __enter__(self) -> ServiceStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class AsyncServiceStore(_Common, AsyncStoredCopyStore):
    """The async twin of :class:`ServiceStore`."""

    def __init__(self, url: str, *, api_key: str | None = None, timeout: float = 30.0) -> None:
        super().__init__(url, api_key, timeout)
        self._client = httpx.AsyncClient(base_url=self.url, headers=self.headers, timeout=timeout)

    async def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return await self._client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise StoreUnavailable(f"cannot reach {self.url}: {exc}") from exc

    async def append(self, rows: Sequence[Row]) -> dict[int, Row]:
        """:meth:`ServiceStore.append`, awaited."""
        if not rows:
            return {}
        body, headers = self._append_request(rows)
        return self._kept(rows, await self._send("POST", "/v1/events", content=body, headers=headers))

    async def query(self, query: Query) -> list[Row]:
        if query.uid is not None:
            return self._one(query, await self._send("GET", self._uid_path(query.uid)))
        rows: list[Row] = []
        cursor = self._start_cursor(query)
        while True:
            response = await self._send("GET", "/v1/events", params=self._page_params(query, cursor, rows))
            cursor = self._take_page(query, response, rows)
            if cursor is None:
                return rows

    async def aclose(self) -> None:
        await self._client.aclose()
