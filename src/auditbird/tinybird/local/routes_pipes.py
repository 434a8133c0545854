"""The Pipes API: ``GET``/``POST /v0/pipes/<name>.(json|csv|ndjson|parquet)``, ``q=`` over ``_``.

Parameters come from the query string, and on POST from a JSON object or form body too (Tinybird
takes both). ``q=`` runs a SQL query over the pipe's result, read as ``_``.
"""

from __future__ import annotations

from .engine import FORMATS, Engine, QueryError
from .queries import guarded, pipe_query, run_sql
from .routes_base import ApiHandler
from .sql_guard import GuardError, SqlGuard
from .template import ParameterError, TemplateError

__all__ = ["PipeHandler", "EXTENSIONS"]

EXTENSIONS = {"json": "JSON", "csv": "CSVWithNames", "ndjson": "JSONEachRow", "parquet": "Parquet"}
CONTENT_TYPES = {**FORMATS, "JSON": "application/json"}


def pipe_output(
    guard: SqlGuard, engine: Engine, name: str, params: dict[str, str], fmt: str, readable: set[str]
) -> bytes:
    """The pipe's rows in ``fmt``; with ``q``, the rows of that query over them (as ``_``), reading
    only ``readable`` tables besides."""
    query = params.pop("q", None)
    if query:  # the extension decides the format, as in Tinybird
        checked = guarded(guard, engine, query, readable, params, underscore=name)
    else:
        checked = pipe_query(guard, engine, name, params)
    return run_sql(guard, engine, checked, fmt, params)


class PipeHandler(ApiHandler):
    async def get(self, name: str, extension: str) -> None:
        await self._answer(name, extension, self.params())

    async def post(self, name: str, extension: str) -> None:
        try:
            body = self.body_params()
        except ValueError as exc:
            return self.fail(400, str(exc))
        await self._answer(name, extension, {**self.params(), **body})

    async def _answer(self, name: str, extension: str, params: dict[str, str]) -> None:
        if not self.authorised("PIPES:READ", name) or self.injected_fault():
            return None
        engine = self.state.engine
        if name not in engine.pipes:
            return self.fail(404, f"The pipe '{name}' does not exist")
        verdict, limits = self.state.faults.limit(f"pipe:{name}")
        if verdict is not None:
            return self.answer(verdict)
        fmt = EXTENSIONS[extension]
        assert self.principal is not None
        readable = self.principal.readable(engine.datasources, engine.pipes)
        try:
            output = await self.blocking(
                pipe_output, self.state.sql_guard, engine, name, params, fmt, readable
            )
        except GuardError as exc:
            return self.fail(exc.status, str(exc))
        except (ParameterError, TemplateError, QueryError) as exc:
            return self.fail(400, str(exc))
        for key, value in limits.items():
            self.set_header(key, value)
        self.set_header("Content-Type", CONTENT_TYPES[fmt])
        self.finish(output)
