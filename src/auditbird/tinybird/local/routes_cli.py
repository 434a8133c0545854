"""The routes Tinybird's CLIs call besides the data APIs: listings, workspace, tokens, health.

The local server holds one workspace (the datafiles it loaded), so every workspace route answers
that one. The datasource/pipe listings carry the fields the CLIs read (``created_at`` and
``updated_at`` as ``YYYY-MM-DD hh:mm:ss.ffffff``: ``tb datasource ls`` cuts the last 7
characters off). Deploy and append routes live in :mod:`.routes_deploy`.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from ..datafiles import Datasource, Pipe
from .engine import QueryError
from .routes_base import ApiHandler, State
from .sql_guard import GuardError
from .tokens import ScopeError, Token, cross_origin, is_loopback

__all__ = ["cli_routes", "HealthHandler", "LocalTokensHandler", "WORKSPACE_NAME"]

WORKSPACE_NAME = "auditbird_local"


def _id(kind: str, name: str) -> str:
    """A stable id for a resource, shaped like Tinybird's (``t_...`` datasources, ``t_...`` pipes)."""
    return f"{kind}_{hashlib.sha256(name.encode()).hexdigest()[:32]}"


def stamp(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def datasource_doc(state: State, ds: Datasource, stats: dict[str, int] | None = None) -> dict[str, Any]:
    created = stamp(state.loaded.get(f"ds:{ds.name}", state.started))
    return {
        "id": _id("t", ds.name),
        "name": ds.name,
        "description": ds.description,
        "type": "ndjson",
        "created_at": created,
        "updated_at": created,
        "engine": {
            "engine": ds.engine.split("(")[0],
            "sorting_key": ds.sorting_key or "tuple()",
            "partition_key": ds.partition_key or "",
            **({"ver": ds.ver} if ds.ver else {}),
        },
        "columns": [
            {
                "name": c.name,
                "type": c.type,
                "nullable": c.nullable,
                "jsonpath": c.jsonpath or "",
                "default_value": c.default,
            }
            for c in ds.columns
        ],
        "schema": {"columns": [{"name": c.name, "type": c.type} for c in ds.columns]},
        "statistics": stats or {"bytes": 0, "row_count": 0},
        "tags": {},
        "shared_with": [],
        "used_by": [],
        "service": "",
        "indexes": [{"name": i.split()[0], "expr": i} for i in ds.indexes],
    }


def pipe_doc(state: State, pipe: Pipe) -> dict[str, Any]:
    created = stamp(state.loaded.get(f"pipe:{pipe.name}", state.started))
    endpoint = pipe.endpoint
    nodes = [
        {
            "id": _id("n", f"{pipe.name}.{n.name}"),
            "name": n.name,
            "sql": n.sql,
            "description": n.description,
            "node_type": "endpoint" if n is endpoint and pipe.type == "endpoint" else "standard",
            "materialized": None,
            "created_at": created,
            "updated_at": created,
        }
        for n in pipe.nodes
    ]
    is_endpoint = (pipe.type or "").lower() == "endpoint"
    return {
        "id": _id("t", pipe.name),
        "name": pipe.name,
        "description": pipe.description,
        "type": "endpoint" if is_endpoint else "default",
        "endpoint": _id("n", f"{pipe.name}.{endpoint.name}") if is_endpoint else None,
        "created_at": created,
        "updated_at": created,
        "parent": None,
        "nodes": nodes,
        "url": f"/v0/pipes/{pipe.name}.json" if is_endpoint else None,
    }


class HealthHandler(ApiHandler):
    def get(self) -> None:
        self.write({"status": "ok", "server": "auditbird tinybird local"})


class LocalTokensHandler(ApiHandler):
    """Tinybird Local answers ``GET /tokens`` without auth: the tokens to use against it."""

    def get(self) -> None:
        # Only for the CLI on this machine: never another host, never a page in a browser.
        if not is_loopback(self.request.remote_ip) or cross_origin(self.request.headers, self.request.host):
            return self.fail(403, "GET /tokens answers only local callers, and no page from another origin")
        token = self.state.token
        self.write({"user_token": token, "admin_token": token, "workspace_admin_token": token})


def sees_datasource(token: Token | None, name: str) -> bool:
    """Whether a token may see a datasource's definition: it reads or appends to it."""
    return token is not None and (
        token.can("DATASOURCES:READ", name) or token.can("DATASOURCES:APPEND", name)
    )


class DatasourcesHandler(ApiHandler):
    async def get(self, name: str | None = None) -> None:
        if not self.authorised():
            return
        engine = self.state.engine
        if name is not None:
            if not sees_datasource(self.principal, name):
                return self.fail(403, f"Forbidden: this token has no DATASOURCES:READ:{name} scope")
            ds = engine.datasources.get(name)
            if ds is None:
                return self.fail(404, f"Data Source '{name}' not found")
            stats = await self.blocking(_stats, self.state, [name])
            self.finish(datasource_doc(self.state, ds, stats.get(name)))
            return
        names = [n for n in engine.datasources if sees_datasource(self.principal, n)]
        stats = await self.blocking(_stats, self.state, names)
        self.finish(
            {"datasources": [datasource_doc(self.state, engine.datasources[n], stats.get(n)) for n in names]}
        )


def _stats(state: State, names: list[str]) -> dict[str, dict[str, int]]:
    """Rows and bytes per table, from the active parts (every table of the database: no names in SQL)."""
    out = state.engine.run(
        "SELECT table, sum(rows), sum(bytes_on_disk) FROM system.parts "
        "WHERE active AND database = currentDatabase() GROUP BY table",
        "TSV",
    )
    stats = {}
    for line in out.decode().splitlines():
        table, rows, size = line.split("\t")
        if table in names:
            stats[table] = {"row_count": int(rows), "bytes": int(size)}
    return stats


class PipesHandler(ApiHandler):
    def get(self, name: str | None = None) -> None:
        if not self.authorised(None if name is None else "PIPES:READ", name or ""):
            return
        assert self.principal is not None
        pipes = self.state.engine.pipes
        if name is not None:
            pipe = pipes.get(name)
            if pipe is None:
                return self.fail(404, f"The pipe '{name}' does not exist")
            self.finish(pipe_doc(self.state, pipe))
            return
        readable = [p for p in pipes.values() if self.principal.can("PIPES:READ", p.name)]
        self.finish({"pipes": [pipe_doc(self.state, p) for p in readable]})


def _token_doc(state: State) -> dict[str, Any]:
    return {
        "id": _id("tk", "admin"),
        "name": "admin token",
        "token": state.token,
        "scopes": [{"type": "ADMIN"}],
        "description": "the token the local server was started with",
        "origin": {"type": "W"},
    }


def _created_doc(token: Token) -> dict[str, Any]:
    """A created token: its name and scopes, never its value (only its digest is kept)."""
    return {"id": _id("tk", token.name), **token.describe(), "description": "", "origin": {"type": "W"}}


def workspace_doc(state: State, name: str = WORKSPACE_NAME) -> dict[str, Any]:
    return {
        "id": _id("w", name),
        "name": name,
        "token": state.token,
        "role": "admin",
        "is_branch": False,
        "main": None,
        "created_at": stamp(state.started),
        "organization_id": None,
        "plan": "local",
        "releases": [],
        "user_email": "local@auditbird",
    }


def _workspace_names(state: State) -> list[str]:
    names: list[str] = getattr(state, "workspace_names", None) or [WORKSPACE_NAME]
    state.workspace_names = names  # type: ignore[attr-defined]
    return names


class TokensHandler(ApiHandler):
    """Tinybird's Tokens API, admin only. ``GET /v0/tokens`` lists the admin token (with its value,
    which the CLIs read) and the created ones (names and scopes: their values are not kept);
    ``POST /v0/tokens?name=N&scope=PIPES:READ:p`` creates a static token, its value answered once."""

    def get(self, token_id: str | None = None) -> None:
        if not self.authorised("ADMIN"):
            return
        admin = _token_doc(self.state)
        created = [_created_doc(t) for t in self.state.tokens.tokens() if not t.admin]
        if token_id is None:
            self.finish({"tokens": [admin, *created]})
            return
        if token_id in {admin["id"], admin["name"], self.state.token}:
            self.finish(admin)
            return
        found = next((d for d in created if token_id in {d["id"], d["name"]}), None)
        if found is None:
            return self.fail(404, f"Token '{token_id}' not found")
        self.finish(found)

    def post(self, token_id: str | None = None) -> None:
        if not self.authorised("ADMIN"):
            return
        name = self.get_argument("name", "")
        try:
            value = self.state.tokens.create(name, self.get_arguments("scope"))
        except ScopeError as exc:
            return self.fail(400, str(exc))
        token = self.state.tokens.lookup(value)
        assert token is not None
        self.finish({"token": value, **_created_doc(token)})


class WorkspaceHandler(ApiHandler):
    """One workspace. ``tb --local`` creates one per project (``POST /v1/workspaces?name=``): each
    such name is another name for the same data, since the local server holds one set of tables."""

    def get(self, ws_id: str | None = None) -> None:
        if self.authorised("ADMIN"):  # the workspace's document holds its admin token
            names = _workspace_names(self.state)
            name = next((n for n in names if ws_id in {None, _id("w", n), n}), WORKSPACE_NAME)
            self.finish(workspace_doc(self.state, name))

    def post(self, ws_id: str | None = None) -> None:
        if not self.authorised("ADMIN"):
            return
        name = self.get_argument("name", "")
        if ws_id is not None or not name:
            return self.fail(400, "Create a workspace with POST /v1/workspaces?name=<name>")
        names = _workspace_names(self.state)
        if name not in names:
            names.append(name)
        self.finish(workspace_doc(self.state, name))

    def delete(self, ws_id: str | None = None) -> None:
        if not self.authorised("ADMIN"):
            return
        names = _workspace_names(self.state)
        kept = [n for n in names if n == WORKSPACE_NAME or ws_id not in {_id("w", n), n}]
        names[:] = kept
        self.finish({"deleted": ws_id})


class UserWorkspacesHandler(ApiHandler):
    def get(self) -> None:
        if self.authorised("ADMIN"):
            docs = [workspace_doc(self.state, n) for n in _workspace_names(self.state)]
            self.finish({"workspaces": docs, "organization_id": None})


class RegionsHandler(ApiHandler):
    def get(self) -> None:
        url = f"{self.request.protocol}://{self.request.host}"
        self.finish({"regions": [{"name": "local", "api_host": url, "host": url, "provider": "local"}]})


class ExampleHandler(ApiHandler):
    """The URL to call a pipe with, as plain text: what the CLIs print (``tb endpoint url``)."""

    def get(self) -> None:
        pipe = self.get_query_argument("pipe", "")
        if not self.authorised("PIPES:READ", pipe):
            return
        if pipe not in self.state.engine.pipes:
            return self.fail(404, f"The pipe '{pipe}' does not exist")
        fmt = self.get_query_argument("format", "json")
        # The caller's own token: a read token never learns the admin one.
        url = (
            f"{self.request.protocol}://{self.request.host}/v0/pipes/{pipe}.{fmt}?token={self.given_token()}"
        )
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.finish(url)


class SqlTablesHandler(ApiHandler):
    """``POST /v0/sql_tables``: the tables a query reads, from ClickHouse's parser. The Classic CLI
    asks this when its own parser (chtoolset) cannot be imported."""

    async def post(self) -> None:
        if not self.authorised():
            return
        query = self.get_body_argument("q", None) or self.get_query_argument("q", None)
        if not query:
            return self.fail(400, "Missing the 'q' parameter")
        try:
            names = await self.blocking(self.state.sql_guard.tables_read, query)
        except (GuardError, QueryError) as exc:
            if self.get_body_argument("raising", "false") == "true":
                return self.fail(400, str(exc))
            names = set()
        self.finish({"tables": [list(n.split(".", 1)) if "." in n else ["", n] for n in sorted(names)]})


class SqlReplaceHandler(ApiHandler):
    """``POST /v0/sql_replace``: the Classic CLI's table renaming (for versioned resources), asked of
    the server when its own parser cannot be imported. Only replacements of a name by itself (no
    versions, what auditbird's datafiles give) are done: the query comes back as it was."""

    def post(self) -> None:
        if not self.authorised():
            return
        query = self.get_body_argument("q", None)
        try:
            replacements = json.loads(self.get_body_argument("replacements", "{}"))
        except ValueError:
            return self.fail(400, "replacements must be a JSON object")
        if not query or not isinstance(replacements, dict):
            return self.fail(400, "Send q and replacements (a JSON object)")
        renamed = {k: v for k, v in replacements.items() if k != v}
        if renamed:
            return self.fail(
                400,
                f"The local server cannot rename tables in a query ({', '.join(renamed)}): "
                "drop the VERSION lines",
            )
        head = query.lstrip()
        if head[:6].lower() == "select":  # the CLI swaps the first "SELECT" back to what it was
            query = "SELECT" + head[6:]
        self.finish({"query": query})


def cli_routes(args: dict[str, Any]) -> list[tuple[str, type, dict[str, Any]]]:
    from .routes_deploy import deploy_routes

    name = r"([A-Za-z0-9_.]+)"
    return [
        *deploy_routes(args),  # first: it answers POST on the listings' routes too
        (rf"/v0/datasources/{name}/?", DatasourcesHandler, args),
        (rf"/v0/pipes/{name}/?", PipesHandler, args),
        (r"/v0/tokens/?", TokensHandler, args),
        (r"/v0/tokens/([^/]+)/?", TokensHandler, args),
        (r"/v[01]/workspace/?", WorkspaceHandler, args),
        (r"/v[01]/workspaces/?", WorkspaceHandler, args),
        (r"/v[01]/workspaces/([^/]+)/?", WorkspaceHandler, args),
        (r"/v[01]/user/workspaces/?", UserWorkspacesHandler, args),
        (r"/v0/regions/?", RegionsHandler, args),
        (r"/v0/sql_tables/?", SqlTablesHandler, args),
        (r"/v0/sql_replace/?", SqlReplaceHandler, args),
        (r"/examples/query\.http", ExampleHandler, args),
    ]
