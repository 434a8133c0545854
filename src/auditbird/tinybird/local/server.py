"""The HTTP side: Tinybird's Events, Pipes and Query APIs, served by Tornado over :class:`Engine`.

Tornado is already the template engine Tinybird's pipes need, and its HTTP server is enough
here, so the ``local`` extra needs nothing else. chDB work runs on one worker thread (chDB is
not thread-safe), so the event loop keeps answering while a query runs.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import signal
import sys
import zlib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from tornado import httpserver, web

from ..datafiles import SHIPPED, load_dir
from .engine import FORMATS, Engine, QueryError
from .faults import Faults, Verdict
from .sql_guard import GuardError, SqlGuard
from .template import ParameterError, TemplateError, is_templated, render
from .tokens import (
    ScopeError,
    Token,
    TokenStore,
    cross_origin,
    given_token,
    host_allowed,
    install_log_masking,
    is_loopback,
    log_request,
    redact_uri,
)

__all__ = ["make_app", "serve", "MAX_REQUEST_BYTES"]

MAX_REQUEST_BYTES = 10 * 1024 * 1024  # Tinybird's Events API limit per request
MAX_DECODED_BYTES = 100 * 1024 * 1024  # what a gzip body may expand to
PIPE_DOCS = "https://www.tinybird.co/docs/api-reference/pipe-api"
SQL_DOCS = "https://www.tinybird.co/docs/api-reference/query-api"
T = TypeVar("T")


class _State:
    def __init__(self, engine: Engine, token: str, faults: Faults, host: str = "127.0.0.1") -> None:
        self.engine = engine
        self.token = token
        self.faults = faults
        self.host = host
        self.tokens = TokenStore(token)
        self.guard = SqlGuard(engine)
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="chdb")


class _Base(web.RequestHandler):
    state: _State
    json_errors = True
    docs = PIPE_DOCS

    principal: Token | None = None

    def initialize(self, state: _State) -> None:
        self.state = state

    def prepare(self) -> None:
        # DNS rebinding: a page that rebinds its own name to 127.0.0.1 sends that name as Host.
        if not host_allowed(self.request.host, self.state.host):
            self.fail(403, f"Host '{self.request.host}' is not this server: use localhost or its address")

    def _request_summary(self) -> str:
        return f"{self.request.method} {redact_uri(self.request.uri or '')} ({self.request.remote_ip})"

    def check_xsrf_cookie(self) -> None:  # an API: no cookies, no XSRF
        return None

    def fail(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        self.clear()
        self.set_status(status)
        for key, value in (headers or {}).items():
            self.set_header(key, value)
        if self.json_errors:
            self.set_header("Content-Type", "application/json")
            self.finish(json.dumps({"error": message, "documentation": self.docs}))
        else:
            self.set_header("Content-Type", "text/plain; charset=utf-8")
            self.finish(message)

    def answer(self, verdict: Verdict) -> None:
        self.fail(verdict.status, verdict.message, verdict.headers)

    def authorised(self, scope: str | None = None, resource: str = "") -> bool:
        """Bearer header or ``?token=``, holding ``scope`` on ``resource`` if given; else a 403."""
        given = given_token(self.request.headers, self.get_query_argument("token", None))
        token = self.state.tokens.lookup(given)
        if token is None:
            self.fail(403, "Invalid token" if given else "Missing token: pass Authorization: Bearer <token>")
            return False
        if scope is not None and not token.can(scope, resource):
            self.fail(403, f"Forbidden: this token has no {scope}:{resource} scope")
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

    async def blocking(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.state.executor, fn, *args)


class TokensHandler(_Base):
    """Tinybird Local answers ``GET /tokens`` without auth: the tokens to use against it."""

    def get(self) -> None:
        # Only for the CLI on this machine: never another host, never a page in a browser.
        if not is_loopback(self.request.remote_ip) or cross_origin(self.request.headers, self.request.host):
            return self.fail(403, "GET /tokens answers only local callers, and no page from another origin")
        token = self.state.token
        self.write({"user_token": token, "admin_token": token, "workspace_admin_token": token})


class TokensApiHandler(_Base):
    """Tinybird's Tokens API, admin only: ``POST /v0/tokens?name=N&scope=PIPES:READ:p`` creates a
    static token (its value is answered once); ``GET /v0/tokens`` lists names and scopes."""

    def get(self) -> None:
        if self.authorised("ADMIN"):
            self.write({"tokens": [t.describe() for t in self.state.tokens.tokens()]})

    def post(self) -> None:
        if not self.authorised("ADMIN"):
            return
        name = self.get_argument("name", "")
        try:
            value = self.state.tokens.create(name, self.get_arguments("scope"))
        except ScopeError as exc:
            return self.fail(400, str(exc))
        self.write({"token": value, **self.state.tokens.lookup(value).describe()})  # type: ignore[union-attr]


class EventsHandler(_Base):
    json_errors = False

    async def post(self) -> None:
        name = self.get_query_argument("name", None)
        if not name:
            return self.fail(400, "Missing 'name' parameter")
        if not self.authorised("DATASOURCES:APPEND", name) or self.injected_fault():
            return None
        engine = self.state.engine
        if name not in engine.datasources:
            return self.fail(404, f"Data Source '{name}' not found")
        verdict, limits = self.state.faults.limit(f"ds:{name}")
        if verdict is not None:
            return self.answer(verdict)
        body = self.request.body
        if len(body) > MAX_REQUEST_BYTES:
            return self.fail(
                413, f"Request body too large: {len(body)} bytes, the limit is {MAX_REQUEST_BYTES}"
            )
        if self.request.headers.get("Content-Encoding", "").lower() == "gzip":
            try:
                body = _gunzip(body)
            except ValueError as exc:
                return self.fail(413 if "expands" in str(exc) else 400, str(exc))
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            return self.fail(400, "The body is not UTF-8 NDJSON")
        try:
            result = await self.blocking(engine.ingest, name, text, body)
        except QueryError as exc:
            return self.fail(500, f"Insert failed: {exc}")
        wait = self.get_query_argument("wait", "false").lower() in {"true", "1"}
        for key, value in limits.items():
            self.set_header(key, value)
        self.set_status(200 if wait else 202)
        self.write({"successful_rows": result.successful_rows, "quarantined_rows": result.quarantined_rows})


class PipeHandler(_Base):
    async def get(self, name: str, extension: str) -> None:
        if not self.authorised("PIPES:READ", name) or self.injected_fault():
            return None
        engine = self.state.engine
        if name not in engine.pipes:
            return self.fail(404, f"The pipe '{name}' does not exist")
        verdict, limits = self.state.faults.limit(f"pipe:{name}")
        if verdict is not None:
            return self.answer(verdict)
        fmt = {"json": "JSON", "csv": "CSVWithNames", "ndjson": "JSONEachRow"}[extension]
        params = self.params()
        try:
            output = await self.blocking(_run_pipe, engine, self.state.guard, name, params, fmt)
        except GuardError as exc:
            return self.fail(exc.status, str(exc))
        except (ParameterError, TemplateError, QueryError) as exc:
            return self.fail(400, str(exc))
        for key, value in limits.items():
            self.set_header(key, value)
        self.set_header("Content-Type", FORMATS[fmt] if fmt != "JSON" else "application/json")
        self.finish(output)


class SqlHandler(_Base):
    docs = SQL_DOCS

    async def get(self) -> None:
        await self._query(self.get_query_argument("q", None))

    async def post(self) -> None:
        query = self.get_body_argument("q", None) if self.request.body else None
        if query is None and self.request.body:
            query = self.request.body.decode("utf-8", "replace")
        await self._query(query or self.get_query_argument("q", None))

    async def _query(self, query: str | None) -> None:
        if not self.authorised() or self.injected_fault():
            return None
        if not query:
            return self.fail(400, "Missing 'q' parameter with the SQL query")
        params = {k: v for k, v in self.params().items() if k != "q"}
        engine = self.state.engine
        assert self.principal is not None
        tables = self.principal.readable(engine.datasources, engine.pipes)
        try:
            sql = render(query, params) if is_templated(query) else query
            guarded = await self.blocking(self.state.guard.check, sql, tables, FORMATS)
            fmt = guarded.fmt
            output = await self.blocking(self.state.guard.run, guarded, fmt or "JSON")
        except GuardError as exc:
            return self.fail(exc.status, str(exc))
        except (ParameterError, TemplateError, QueryError) as exc:
            return self.fail(400, str(exc))
        self.set_header("Content-Type", FORMATS[fmt or "JSON"])
        self.finish(output)


class ListHandler(_Base):
    def get(self, kind: str) -> None:
        if not self.authorised():
            return
        engine = self.state.engine
        readable = self.principal.readable(engine.datasources, engine.pipes) if self.principal else set()
        if kind == "datasources":
            self.write(
                {
                    "datasources": [
                        {"name": ds.name, "columns": [{"name": c.name, "type": c.type} for c in ds.columns]}
                        for ds in engine.datasources.values()
                        if ds.name in readable
                    ]
                }
            )
        else:
            self.write(
                {
                    "pipes": [
                        {"name": p.name, "type": p.type, "nodes": [n.name for n in p.nodes]}
                        for p in engine.pipes.values()
                        if p.name in readable
                    ]
                }
            )


class HealthHandler(_Base):
    def get(self) -> None:
        self.write({"status": "ok", "server": "auditbird tinybird local"})


def _run_pipe(engine: Engine, guard: SqlGuard, name: str, params: dict[str, str], fmt: str) -> bytes:
    sql = engine.pipe_sql(name, params)
    tables = {*engine.datasources, *(f"{ds}_quarantine" for ds in engine.datasources), *engine.pipes}
    output = guard.run(guard.check(sql, tables), fmt)
    if fmt != "JSON":
        return output
    doc = json.loads(output)
    doc.setdefault("rows", len(doc.get("data", [])))
    doc.setdefault("rows_before_limit_at_least", doc["rows"])
    ordered = {
        k: doc[k] for k in ("meta", "data", "rows", "rows_before_limit_at_least", "statistics") if k in doc
    }
    return json.dumps(ordered, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _gunzip(body: bytes) -> bytes:
    decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = decoder.decompress(body, MAX_DECODED_BYTES)
    except zlib.error as exc:
        raise ValueError(f"Content-Encoding gzip, but the body is not gzip: {exc}") from None
    if decoder.unconsumed_tail:
        raise ValueError(f"The gzip body expands beyond {MAX_DECODED_BYTES} bytes")
    return out


def make_app(
    engine: Engine, token: str, faults: Faults | None = None, host: str = "127.0.0.1"
) -> web.Application:
    state = _State(engine, token, faults or Faults(), host)
    install_log_masking(state.tokens)
    args = {"state": state}
    return web.Application(
        [
            (r"/tokens/?", TokensHandler, args),
            (r"/v0/tokens/?", TokensApiHandler, args),
            (r"/v0/events/?", EventsHandler, args),
            (r"/v0/pipes/([A-Za-z0-9_]+)\.(json|csv|ndjson)", PipeHandler, args),
            (r"/v0/sql/?", SqlHandler, args),
            (r"/v0/(datasources|pipes)/?", ListHandler, args),
            (r"/(?:v0/health)?", HealthHandler, args),
        ],
        compress_response=True,
        log_function=log_request,
    )


def serve(
    *,
    host: str = "127.0.0.1",
    port: int = 7181,
    data: str | Path | None = None,
    datafiles: Sequence[str | Path] = (),
    token: str | None = None,
    fail_rate: float = 0.0,
    throttle: int | None = None,
    retry_after: int = 1,
    seed: int = 0,
) -> None:
    """Load the datafiles into chDB and answer until SIGINT/SIGTERM."""
    faults = Faults(fail_rate, throttle, retry_after, seed)
    datasources, pipes = load_dir(SHIPPED, *datafiles)
    engine = Engine(data)
    engine.load(datasources, pipes)
    token = token or "p." + secrets.token_urlsafe(32)
    app = make_app(engine, token, faults, host)
    asyncio.run(_main(app, engine, host, port, token, data))


async def _main(app: web.Application, engine: Engine, host: str, port: int, token: str, data: Any) -> None:
    server = httpserver.HTTPServer(app, max_body_size=8 * MAX_REQUEST_BYTES, decompress_request=False)
    server.listen(port, host)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    where = data if data is not None else "a temporary folder (lost on exit)"
    sys.stdout.write(
        f"Tinybird Local (auditbird) on http://{host}:{port}\n"
        f"data: {where}\n"
        f"datasources: {', '.join(engine.datasources)}; pipes: {', '.join(engine.pipes)}\n"
        f"token: GET http://{host}:{port}/tokens from this machine (never printed: logs stay clean)\n"
    )
    sys.stdout.flush()
    await stop.wait()
    server.stop()
    await server.close_all_connections()
    engine.close()
