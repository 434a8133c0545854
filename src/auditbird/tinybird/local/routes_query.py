"""The Query API, ``/v0/sql``: one SELECT over the workspace's Data Sources and Pipes.

``q`` comes from the query string, a form field, or the whole body (``text/plain``, as
``@tinybirdco/sdk`` sends it). A query starting with ``%`` is a template over the request's
parameters. Pipes are read by name, and ``_`` is the pipe named by ``pipeline=``. System tables
are refused (403); the state's ``sql_guard``, when set, decides the rest before anything runs.
"""

from __future__ import annotations

from .engine import FORMATS, Engine, QueryError
from .queries import TableRefused, checked, resolve, run_sql
from .routes_base import SQL_DOCS, ApiHandler, SqlGuard
from .template import ParameterError, TemplateError, is_templated, render

__all__ = ["SqlHandler", "query_output"]


def query_output(
    engine: Engine, query: str, params: dict[str, str], guard: SqlGuard | None
) -> tuple[bytes, str]:
    """(the answer, its format) for ``query``."""
    sql = render(query, params) if is_templated(query) else query
    body, fmt = checked(sql)
    if guard is not None:
        guard(body, engine)
    pipeline = params.get("pipeline")
    if pipeline is not None and pipeline not in engine.pipes:
        raise QueryError(f"pipeline={pipeline}: no such pipe")
    fmt = fmt or "JSON"
    return run_sql(engine, resolve(engine, body, params, underscore=pipeline), fmt, params), fmt


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
        try:
            output, fmt = await self.blocking(
                query_output, self.state.engine, query, params, self.state.sql_guard
            )
        except TableRefused as exc:
            return self.fail(403, str(exc))
        except (ParameterError, TemplateError, QueryError) as exc:
            return self.fail(400, str(exc))
        self.set_header("Content-Type", FORMATS[fmt])
        self.finish(output)
