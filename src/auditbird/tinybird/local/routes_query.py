"""The Query API, ``/v0/sql``: one SELECT over the workspace's Data Sources and Pipes.

``q`` comes from the query string, a form field, or the whole body (``text/plain``, as
``@tinybirdco/sdk`` sends it). A query starting with ``%`` is a template over the request's
parameters. Pipes are read by name, and ``_`` is the pipe named by ``pipeline=``. The state's
:class:`.sql_guard.SqlGuard` decides what runs: a table outside the workspace or the token's scope
is a 403 (as Tinybird answers it), any other refusal a 400.
"""

from __future__ import annotations

from .engine import FORMATS, Engine, QueryError
from .queries import guarded, run_sql
from .routes_base import SQL_DOCS, ApiHandler
from .sql_guard import GuardError, SqlGuard
from .template import ParameterError, TemplateError, is_templated, render

__all__ = ["SqlHandler", "query_output"]


def query_output(
    guard: SqlGuard, engine: Engine, query: str, params: dict[str, str], readable: set[str]
) -> tuple[bytes, str]:
    """(the answer, its format) for ``query``, reading only ``readable`` tables."""
    sql = render(query, params) if is_templated(query) else query
    pipeline = params.get("pipeline")
    if pipeline is not None and pipeline not in engine.pipes:
        raise QueryError(f"pipeline={pipeline}: no such pipe")
    checked = guarded(guard, engine, sql, readable, params, underscore=pipeline)
    fmt = checked.fmt or "JSON"
    return run_sql(guard, engine, checked, fmt, params), fmt


class SqlHandler(ApiHandler):
    docs = SQL_DOCS

    async def get(self) -> None:
        await self._query(self.get_query_argument("q", None))

    async def post(self) -> None:
        query = self.get_body_argument("q", None) if self.request.body else None
        if query is None and self.request.body:
            content_type = self.request.headers.get("Content-Type", "").lower()
            if not content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
                query = self.request.body.decode("utf-8", "replace")
        await self._query(query or self.get_query_argument("q", None))

    async def _query(self, query: str | None) -> None:
        if not self.authorised() or self.injected_fault():
            return None
        if not query:
            return self.fail(400, "Missing the 'q' parameter with the SQL query")
        params = {k: v for k, v in self.params().items() if k != "q"}
        engine = self.state.engine
        assert self.principal is not None
        readable = self.principal.readable(engine.datasources, engine.pipes)
        pipeline = params.get("pipeline")
        if pipeline is not None and pipeline in engine.pipes and pipeline not in readable:
            return self.fail(403, f"Forbidden: this token has no PIPES:READ:{pipeline} scope")
        try:
            output, fmt = await self.blocking(
                query_output, self.state.sql_guard, engine, query, params, readable
            )
        except GuardError as exc:
            return self.fail(exc.status, str(exc))
        except (ParameterError, TemplateError, QueryError) as exc:
            return self.fail(400, str(exc))
        self.set_header("Content-Type", FORMATS[fmt])
        self.finish(output)
