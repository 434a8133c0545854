"""The HTTP side: Tinybird's Events, Pipes and Query APIs, served by Tornado over :class:`Engine`.

This module only assembles the app; each API's routes live in their own ``routes_*`` module
(``routes_events``, ``routes_pipes``, ``routes_query``, ``routes_cli`` for what Tinybird's CLIs
call), and docs/tinybird-compatibility.md says what each implements.

Tornado is already the template engine Tinybird's pipes need, and its HTTP server is enough
here, so the ``local`` extra needs nothing else. chDB work runs on one worker thread (chDB is
not thread-safe), so the event loop keeps answering while a query runs.
"""

from __future__ import annotations

import asyncio
import secrets
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tornado import httpserver, web

from ..datafiles import SHIPPED, load_dir
from .engine import Engine
from .events_body import MAX_REQUEST_BYTES
from .faults import Faults
from .routes_base import NotFoundHandler, State
from .routes_cli import HealthHandler, LocalTokensHandler, cli_routes
from .routes_deploy import deployed_dir
from .routes_events import EventsHandler
from .routes_pipes import PipeHandler
from .routes_query import SqlHandler
from .tokens import install_log_masking, log_request

__all__ = ["make_app", "serve", "MAX_REQUEST_BYTES"]


def make_app(
    engine: Engine, token: str, faults: Faults | None = None, *, host: str = "127.0.0.1", port: int = 0
) -> web.Application:
    state = State(engine, token, faults or Faults(), host, port)
    install_log_masking(state.tokens)  # no token value in any record Tornado or asyncio logs
    args = {"state": state}
    return web.Application(
        [
            (r"/tokens/?", LocalTokensHandler, args),
            (r"/v0/events/?", EventsHandler, args),
            (r"/v0/pipes/([A-Za-z0-9_]+)\.(json|csv|ndjson|parquet)", PipeHandler, args),
            (r"/v0/sql/?", SqlHandler, args),
            *cli_routes(args),
            (r"/(?:v0/health)?", HealthHandler, args),
        ],
        compress_response=True,
        log_function=log_request,  # the access log with ?token= redacted
        default_handler_class=NotFoundHandler,
        default_handler_args=args,
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
    engine = Engine(data)
    try:  # a bad datafile or a busy port still closes chDB and removes a temporary folder
        deployed = deployed_dir(engine.data_dir)  # what `tb deploy` / `tb push` added, loaded again
        datasources, pipes = load_dir(SHIPPED, *datafiles, *([deployed] if deployed.is_dir() else []))
        engine.load(datasources, pipes)
        token = token or "p." + secrets.token_urlsafe(32)
        app = make_app(engine, token, faults, host=host, port=port)
        asyncio.run(_main(app, engine, host, port, token, data))
    finally:
        engine.close()


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
