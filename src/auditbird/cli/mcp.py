"""``auditbird mcp``: the audit log's read-only tools for agents, over MCP on stdio."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from ._app import fail, settings


def mcp(
    projection: Annotated[
        list[str],
        typer.Option(
            "--projection", help="A projection agents may fold: module:Class (or name=module:Class)"
        ),
    ] = [],  # noqa: B006
    http: Annotated[
        bool, typer.Option("--http", help="Streamable HTTP instead of stdio: each request brings its own key")
    ] = False,
    host: Annotated[str, typer.Option("--host", help="--http: address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="--http: port")] = 8765,
) -> None:
    """Serve read-only audit-log tools over MCP, scoped by an API key: on stdio the key in
    AUDITBIRD_API_KEY; with --http (streamable HTTP, path /mcp) each request's bearer key.

    Example: auditbird --store sqlite:///audit.db mcp --projection app.views:MonitorState
    (with AUDITBIRD_API_KEY=ab_... in the environment)
    """
    token = os.environ.get("AUDITBIRD_API_KEY", "")
    if not token and not http:
        # An environment variable, not an option: a key on the command line shows in `ps`.
        fail(
            "set AUDITBIRD_API_KEY to a read key (auditbird keys create --workspace W --scope read) "
            "or a viewer link's token (auditbird keys viewer-link)"
        )
    try:
        from ..mcp_server import build_server, load_projections
    except ModuleNotFoundError as exc:
        fail(f"auditbird mcp needs the mcp extra: pip install 'auditbird[mcp]' ({exc})")
    try:
        if http:
            # Over HTTP every request is authorised by its own `Authorization: Bearer ab_...` key.
            url = f"http://{host}:{port}"
            server = build_server(settings.store, None, load_projections(projection), http_url=url)
        else:
            server = build_server(settings.store, token, load_projections(projection))
    except ValueError as exc:
        fail(exc)
    if http:
        server.run("streamable-http", host=host, port=port)
    else:
        server.run("stdio")


def register(app: typer.Typer) -> None:
    app.command("mcp")(mcp)
