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
) -> None:
    """Serve read-only audit-log tools over MCP (stdio), scoped by the API key in AUDITBIRD_API_KEY.

    Example: auditbird --store sqlite:///audit.db mcp --projection app.views:MonitorState
    (with AUDITBIRD_API_KEY=ab_... in the environment)
    """
    token = os.environ.get("AUDITBIRD_API_KEY", "")
    if not token:
        # An environment variable, not an option: a key on the command line shows in `ps`.
        fail("set AUDITBIRD_API_KEY to a read key (auditbird keys create --workspace W --scope read)")
    try:
        from ..mcp_server import build_server, load_projections
    except ModuleNotFoundError as exc:
        fail(f"auditbird mcp needs the mcp extra: pip install 'auditbird[mcp]' ({exc})")
    try:
        server = build_server(settings.store, token, load_projections(projection))
    except ValueError as exc:
        fail(exc)
    server.run("stdio")


def register(app: typer.Typer) -> None:
    app.command("mcp")(mcp)
