"""What every route of the local server shares: its state, auth, and Tinybird's JSON errors.

Tinybird answers every status with a JSON body (``{"error": "..."}``), errors included, and its
clients parse it (zod-bird calls ``res.json()`` on any non-2xx), so nothing here may answer HTML
or plain text: Tornado's own error pages (404 for an unknown route, 405, 500) are JSON too.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from http import HTTPStatus
from typing import Any, TypeVar

from tornado import web

from .engine import Engine
from .faults import Faults, Verdict

__all__ = ["ApiHandler", "State", "NotFoundHandler", "PIPE_DOCS", "SQL_DOCS", "EVENTS_DOCS"]

PIPE_DOCS = "https://www.tinybird.co/docs/api-reference/pipe-api"
SQL_DOCS = "https://www.tinybird.co/docs/api-reference/query-api"
EVENTS_DOCS = "https://www.tinybird.co/docs/api-reference/events-api"
T = TypeVar("T")

# A guard over a /v0/sql query before it runs: raises QueryError for what Tinybird refuses.
SqlGuard = Callable[[str, Engine], None]


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
        # tb-sec's AST allowlist plugs in here; None keeps the built-in table check alone.
        self.sql_guard: SqlGuard | None = None


class ApiHandler(web.RequestHandler):
    state: State
    docs = PIPE_DOCS

    def initialize(self, state: State) -> None:
        self.state = state

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
        header = self.request.headers.get("Authorization", "")
        given = header[7:].strip() if header.lower().startswith("bearer ") else None
        if given is None:
            given = self.get_query_argument("token", None)
        return given

    def authorised(self) -> bool:
        """Bearer header or ``?token=``; a 403 is sent when neither matches."""
        given = self.given_token()
        if given is not None and secrets.compare_digest(given.encode(), self.state.token.encode()):
            return True
        self.fail(
            403,
            "Invalid token" if given else "Missing token: pass an Authorization: Bearer <token> header",
        )
        return False

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
        self.fail(
            404,
            f"{self.request.method} {self.request.path} is not a route of the local Tinybird server "
            "(see docs/tinybird-compatibility.md for what it implements)",
        )
