"""The Events API (``POST /v0/events?name=``) and the Data Sources API's append, as Tinybird has them.

Every answer is JSON. A gzip body is read by its ``Content-Encoding`` whatever its
``Content-Type`` (curl's ``--data-binary`` sends a form type). Rate-limit headers
(``X-RateLimit-Limit/Remaining/Reset``, ``Retry-After`` on a 429) are sent as Tinybird documents.
"""

from __future__ import annotations

from tornado import web

from .engine import Engine, IngestResult, QueryError
from .events_body import MAX_REQUEST_BYTES, BodyError, chunks
from .routes_base import EVENTS_DOCS, ApiHandler

__all__ = ["EventsHandler", "ingest_body"]


def ingest_body(engine: Engine, name: str, body: bytes, gzipped: bool) -> IngestResult:
    """Every chunk of ``body`` into ``name`` (rows that do not fit into its quarantine)."""
    total = IngestResult(0, 0, [])
    for chunk in chunks(body, gzipped=gzipped):
        result = engine.ingest(name, chunk.text, chunk.data)
        total.successful_rows += result.successful_rows
        total.quarantined_rows += result.quarantined_rows
        total.errors.extend(result.errors[: max(0, 100 - len(total.errors))])
    return total


@web.stream_request_body
class EventsHandler(ApiHandler):
    """The body is streamed in, not parsed by Tornado: its form parser refuses a gzip body sent with a
    form content type (curl's default), and a body past the limit is counted, not kept."""

    docs = EVENTS_DOCS

    def prepare(self) -> None:
        self._chunks: list[bytes] = []
        self._size = 0
        super().prepare()  # the Host check

    def data_received(self, chunk: bytes) -> None:
        self._size += len(chunk)
        if self._size <= MAX_REQUEST_BYTES:
            self._chunks.append(chunk)

    async def post(self) -> None:
        name = self.get_query_argument("name", None)
        if not name:
            return self.fail(400, "Missing the 'name' parameter: the Data Source to append to")
        if not self.authorised("DATASOURCES:APPEND", name) or self.injected_fault():
            return None
        engine = self.state.engine
        if name not in engine.datasources:
            return self.fail(
                404, f"Data Source '{name}' not found; it must be declared in a .datasource file"
            )
        verdict, limits = self.state.faults.limit(f"ds:{name}")
        if verdict is not None:
            return self.answer(verdict)
        if self._size > MAX_REQUEST_BYTES:
            return self.fail(
                413,
                f"Request body too large: {self._size} bytes, the limit is {MAX_REQUEST_BYTES}; "
                "send smaller batches",
                limits,
            )
        body = b"".join(self._chunks)
        self._chunks = []
        gzipped = self.request.headers.get("Content-Encoding", "").strip().lower() == "gzip"
        try:
            result = await self.blocking(ingest_body, engine, name, body, gzipped)
        except BodyError as exc:
            return self.fail(exc.status, str(exc), limits)
        except QueryError as exc:
            return self.fail(500, f"Insert failed, retry: {exc}", limits)
        wait = self.get_query_argument("wait", "false").lower() in {"true", "1"}
        for key, value in limits.items():
            self.set_header(key, value)
        self.set_status(200 if wait else 202)
        self.write({"successful_rows": result.successful_rows, "quarantined_rows": result.quarantined_rows})
