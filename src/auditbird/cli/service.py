"""``auditbird serve`` and ``auditbird keys create|list|revoke``.

Both find the key file the same way from ``--store``/``AUDITBIRD_URL`` (see
:func:`auditbird.service.keys.keys_path_for`): beside a SQLite store's file, else
``./auditbird.keys.db``; ``--keys``/``AUDITBIRD_KEYS`` overrides it for both.
"""

from __future__ import annotations

import json
import os
import sys
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from ..stores import redact_url
from ._app import fail, settings

__all__ = ["register"]

keys_app = typer.Typer(help="API keys for `auditbird serve`: each has one workspace and one scope.")

KeysOption = Annotated[
    Path | None,
    typer.Option("--keys", envvar="AUDITBIRD_KEYS", help="Key file; default: beside the SQLite store"),
]


class ScopeChoice(StrEnum):
    read = "read"
    write = "write"
    admin = "admin"


def _key_store(keys: Path | None) -> Any:
    try:
        from ..service.keys import KeyStore, keys_path_for
    except ModuleNotFoundError as exc:  # fastapi missing: the service extra is not installed
        fail(f"{exc.name} is missing; install the service extra: pip install 'auditbird[service]'", code=1)
    return KeyStore(keys if keys is not None else keys_path_for(settings.store))


def _when(ms: int | None) -> str:
    if ms is None:
        return ""
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%SZ")


@keys_app.command("create")
def keys_create(
    workspace: Annotated[str, typer.Option("--workspace", help="The one workspace this key reads/writes")],
    scope: Annotated[ScopeChoice, typer.Option("--scope", help="read, write, or admin (both)")],
    name: Annotated[str, typer.Option("--name", help="A label for people, e.g. 'billing-service'")] = "",
    rate: Annotated[
        float | None,
        typer.Option("--rate", help="Requests per second for this key (0: unlimited); default: the server's"),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the key and its details as JSON")] = False,
    keys: KeysOption = None,
) -> None:
    """Create a key. It is shown once (last line, or JSON with --json); only its hash is kept."""
    store = _key_store(keys)
    try:
        created = store.create(workspace=workspace, scope=scope.value, name=name, rate=rate)
    except ValueError as exc:
        fail(str(exc))
    finally:
        store.close()
    k = created.key
    if as_json:
        data = {
            "key": created.secret,
            "key_id": k.key_id,
            "workspace": k.workspace,
            "scope": k.scope,
            "name": k.name,
            "rate": k.rate,
            "created_at": k.created_at,
        }
        sys.stdout.write(json.dumps(data) + "\n")
        return
    sys.stdout.write(
        f"created key {k.key_id} for workspace {k.workspace or '(default)'!s} with scope {k.scope}\n"
        f"keys file: {store.path}\n"
        "store it now: it is shown only this once\n"
        f"{created.secret}\n"
    )


@keys_app.command("list")
def keys_list(
    all_keys: Annotated[bool, typer.Option("--all", help="Include revoked keys")] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
    keys: KeysOption = None,
) -> None:
    """Keys by id, workspace and scope (never the secret: it is not stored)."""
    store = _key_store(keys)
    try:
        found = store.list(include_revoked=all_keys)
    finally:
        store.close()
    if as_json:
        for k in found:
            row = {
                "key_id": k.key_id,
                "workspace": k.workspace,
                "scope": k.scope,
                "name": k.name,
                "rate": k.rate,
                "created_at": k.created_at,
                "revoked_at": k.revoked_at,
            }
            sys.stdout.write(json.dumps(row) + "\n")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{len(found)} key(s) in {store.path}")
    for column in ("id", "workspace", "scope", "name", "rate/s", "created", "revoked"):
        table.add_column(column)
    for k in found:
        table.add_row(
            k.key_id,
            k.workspace or "(default)",
            k.scope,
            k.name,
            "" if k.rate is None else f"{k.rate:g}",
            _when(k.created_at),
            _when(k.revoked_at),
        )
    Console().print(table)


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="The key's id (from `keys list`) or the key itself")],
    keys: KeysOption = None,
) -> None:
    """Revoke a key: requests with it are refused from now on."""
    store = _key_store(keys)
    try:
        revoked = store.revoke(key_id)
    finally:
        store.close()
    if not revoked:
        fail(f"no live key {key_id!r}; see `auditbird keys list`")
    sys.stdout.write(f"revoked {key_id}\n")


def serve(
    host: Annotated[str, typer.Option("--host", help="Interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on")] = 8000,
    store: Annotated[
        str | None, typer.Option("--store", help="Store URL (overrides the global --store/AUDITBIRD_URL)")
    ] = None,
    keys: KeysOption = None,
    rate_limit: Annotated[
        float | None,
        typer.Option(
            "--rate-limit", envvar="AUDITBIRD_RATE_LIMIT", help="Default requests/s per key (0: off)"
        ),
    ] = None,
    max_request_bytes: Annotated[
        int | None, typer.Option("--max-request-bytes", envvar="AUDITBIRD_MAX_REQUEST_BYTES")
    ] = None,
    max_event_bytes: Annotated[
        int | None, typer.Option("--max-event-bytes", envvar="AUDITBIRD_MAX_EVENT_BYTES")
    ] = None,
    metrics_token: Annotated[
        str | None,
        typer.Option(
            "--metrics-token",
            envvar="AUDITBIRD_METRICS_TOKEN",
            help="Serve /metrics only with `Authorization: Bearer TOKEN` (then with per-workspace figures)",
        ),
    ] = None,
    workers: Annotated[int, typer.Option("--workers", help="Server processes")] = 1,
    log_level: Annotated[str, typer.Option("--log-level")] = "info",
) -> None:
    """Serve the REST API (and the web viewer) over the store. Docs at /docs."""
    try:
        import uvicorn

        from ..service.keys import keys_path_for
    except ModuleNotFoundError as exc:
        fail(f"{exc.name} is missing; install the service extra: pip install 'auditbird[service]'", code=1)
    url = store or settings.store
    # The app is built by a factory from the environment, so that --workers processes agree.
    env = {
        "AUDITBIRD_URL": url,
        "AUDITBIRD_KEYS": str(keys if keys is not None else keys_path_for(url)),
        "AUDITBIRD_STRICT": "1" if settings.strict else "",
    }
    if settings.actions:  # worker processes import them again (app_from_env reads this)
        env["AUDITBIRD_ACTIONS"] = ",".join(settings.actions)
    for name, value in (
        ("AUDITBIRD_RATE_LIMIT", rate_limit),
        ("AUDITBIRD_MAX_REQUEST_BYTES", max_request_bytes),
        ("AUDITBIRD_MAX_EVENT_BYTES", max_event_bytes),
        ("AUDITBIRD_METRICS_TOKEN", metrics_token),
    ):
        if value is not None:
            env[name] = str(value)
    os.environ.update(env)
    sys.stderr.write(
        f"auditbird: serving {redact_url(url)} on http://{host}:{port} "
        f"(docs: /docs, keys: {env['AUDITBIRD_KEYS']})\n"
    )
    uvicorn.run(
        "auditbird.service.app:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=log_level,
        access_log=False,
    )


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
    app.add_typer(keys_app, name="keys")
