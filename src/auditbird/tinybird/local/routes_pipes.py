"""The Pipes API: ``GET``/``POST /v0/pipes/<name>.(json|csv|ndjson|parquet)``, ``q=`` over ``_``.

Parameters come from the query string, and on POST from a JSON object or form body too (Tinybird
takes both). ``q=`` runs a SQL query over the pipe's result, read as ``_``.
"""

from __future__ import annotations

from .engine import FORMATS, Engine, QueryError
from .queries import TableRefused, checked, resolve, run_sql
from .routes_base import ApiHandler
from .template import ParameterError, TemplateError

__all__ = ["PipeHandler", "EXTENSIONS"]

EXTENSIONS = {"json": "JSON", "csv": "CSVWithNames", "ndjson": "JSONEachRow", "parquet": "Parquet"}
CONTENT_TYPES = {**FORMATS, "JSON": "application/json"}


def pipe_output(engine: Engine, name: str, params: dict[str, str], fmt: str) -> bytes:
    """The pipe's rows in ``fmt``; with ``q``, the rows of that query over them (as ``_``)."""
    query = params.pop("q", None)
    sql = engine.pipe_sql(name, params)
    checked(sql)
    if query:
        body, _ = checked(query)  # the extension decides the format, as in Tinybird
        sql = resolve(engine, body, params, underscore=name)
    return run_sql(engine, sql, fmt, params)


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
        if not self.authorised() or self.injected_fault():
            return None
        engine = self.state.engine
        if name not in engine.pipes:
            return self.fail(404, f"The pipe '{name}' does not exist")
        verdict, limits = self.state.faults.limit(f"pipe:{name}")
        if verdict is not None:
            return self.answer(verdict)
        fmt = EXTENSIONS[extension]
        try:
            output = await self.blocking(pipe_output, engine, name, params, fmt)
        except TableRefused as exc:
            return self.fail(403, str(exc))
        except (ParameterError, TemplateError, QueryError) as exc:
            return self.fail(400, str(exc))
        for key, value in limits.items():
            self.set_header(key, value)
        self.set_header("Content-Type", CONTENT_TYPES[fmt])
        self.finish(output)
