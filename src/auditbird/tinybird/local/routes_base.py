"""What every route of the local server shares: its state, auth, and Tinybird's JSON errors.

Every route passes :meth:`ApiHandler.prepare` first: the ``Host`` header must name this machine
(issue #10: a DNS-rebinding page reaches 127.0.0.1 under its own name). Every route that reads or
writes asks :meth:`ApiHandler.authorised` for the Tinybird scope it needs (:mod:`.tokens`), and the
access log line never holds a token.

Tinybird answers every status with a JSON body (``{"error": "..."}``), errors included, and its
clients parse it (zod-bird calls ``res.json()`` on any non-2xx), so nothing here may answer HTML
or plain text: Tornado's own error pages (404 for an unknown route, 405, 500) are JSON too.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from http import HTTPStatus
from typing import Any, TypeVar

from tornado import web

from .engine import Engine
from .faults import Faults, Verdict
from .sql_guard import SqlGuard
from .tokens import Token, TokenStore, given_token, host_allowed, redact_uri

__all__ = ["ApiHandler", "State", "NotFoundHandler", "PIPE_DOCS", "SQL_DOCS", "EVENTS_DOCS"]

PIPE_DOCS = "https://www.tinybird.co/docs/api-reference/pipe-api"
SQL_DOCS = "https://www.tinybird.co/docs/api-reference/query-api"
EVENTS_DOCS = "https://www.tinybird.co/docs/api-reference/events-api"
T = TypeVar("T")


class State:
    """What the routes share: the engine, the token, faults, and the one chDB worker thread."""

    def __init__(
        self, engine: Engine, token: str, faults: Faults, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.engine = engine
        self.token = token
        self.faults = faults
        self.host = host
        self.port = port
        self.started = time.time()
        self.loaded: dict[str, float] = {}  # "ds:<name>" / "pipe:<name>" -> when it was (re)deployed
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="chdb")
        self.tokens = TokenStore(token)
        # Every client query (/v0/sql, q=, a pipe's rendered SQL) is checked on ClickHouse's own parse
        # tree against an allowlist before it runs: see :mod:`.sql_guard`.
        self.sql_guard = SqlGuard(engine)


class ApiHandler(web.RequestHandler):
    state: State
    docs = PIPE_DOCS
    principal: Token | None = None  # the caller's token, once :meth:`authorised`

    def initialize(self, state: State) -> None:
        self.state = state

    def prepare(self) -> None:
        # DNS rebinding: a page that rebinds its own name to 127.0.0.1 sends that name as Host.
        if not host_allowed(self.request.host, self.state.host):
            self.fail(403, f"Host '{self.request.host}' is not this server: use localhost or its address")

    def _request_summary(self) -> str:  # Tornado's log lines about this request: no token in them
        return f"{self.request.method} {redact_uri(self.request.uri or '')} ({self.request.remote_ip})"

    def check_xsrf_cookie(self) -> None:  # an API: no cookies, no XSRF
        return None

    def fail(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        """Answer ``status`` with Tinybird's error body, ``{"error": ..., "documentation": ...}``."""
        self.clear()
        self.set_status(status)
        for key, value in (headers or {}).items():
            self.set_header(key, value)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"error": message, "documentation": self.docs}))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """Tornado's own errors (405, a body it cannot read, an exception) as JSON too."""
        reason = self._reason or HTTPStatus(status_code).phrase
        if status_code == 405:
            reason = f"{self.request.method} is not allowed on {self.request.path}"
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"error": reason, "documentation": self.docs}))

    def answer(self, verdict: Verdict) -> None:
        self.fail(verdict.status, verdict.message, verdict.headers)

    def given_token(self) -> str | None:
        """``Authorization: Bearer`` first, else ``?token=``."""
        return given_token(self.request.headers, self.get_query_argument("token", None))

    def authorised(self, scope: str | None = None, resource: str = "") -> bool:
        """A known token (Bearer header or ``?token=``) holding ``scope`` on ``resource`` if given
        (``ADMIN`` holds every scope); else a 403 is sent."""
        given = self.given_token()
        token = self.state.tokens.lookup(given)
        if token is None:
            self.fail(
                403,
                "Invalid token" if given else "Missing token: pass an Authorization: Bearer <token> header",
            )
            return False
        if scope is not None and not token.can(scope, resource):
            if scope == "ADMIN":
                self.fail(403, "Forbidden: this needs the admin token (GET /tokens on this machine)")
            else:
                what = f"{scope}:{resource}" if resource else scope
                self.fail(403, f"Forbidden: this token has no {what} scope; use a token that has it")
            return False
        self.principal = token
        return True

    def injected_fault(self) -> bool:
        verdict = self.state.faults.injected()
        if verdict is not None:
            self.answer(verdict)
            return True
        return False

    def params(self) -> dict[str, str]:
        """Query parameters (repeated ones joined by commas, as Array parameters take them)."""
        out = {}
        for key, values in self.request.query_arguments.items():
            if key == "token":
                continue
            out[key] = ",".join(v.decode("utf-8", "replace") for v in values)
        return out

    def body_params(self) -> dict[str, str]:
        """Parameters of a POST: a JSON object body, else form fields (Tinybird takes both)."""
        content_type = self.request.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if content_type == "application/json" and self.request.body:
            try:
                doc = json.loads(self.request.body)
            except ValueError as exc:
                raise ValueError(f"the body is not JSON: {exc}") from None
            if not isinstance(doc, dict):
                raise ValueError("the JSON body must be an object of parameters")
            return {
                k: ",".join(map(_text, v)) if isinstance(v, list) else _text(v)
                for k, v in doc.items()
                if v is not None and k != "token"
            }
        out = {}
        for key, values in self.request.body_arguments.items():
            if key != "token":
                out[key] = ",".join(v.decode("utf-8", "replace") for v in values)
        return out

    async def blocking(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.state.executor, fn, *args)


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else json.dumps(value)


class NotFoundHandler(ApiHandler):
    """Any route the local server does not have: a JSON 404 naming it, for every method."""

    def prepare(self) -> None:
        super().prepare()
        if self._finished:
            return
        self.fail(
            404,
            f"{self.request.method} {self.request.path} is not a route of the local Tinybird server "
            "(see docs/tinybird-compatibility.md for what it implements)",
        )
