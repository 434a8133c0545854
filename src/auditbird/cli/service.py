"""``auditbird serve`` and ``auditbird keys create|list|revoke``.

One rule for where keys, viewer-link secrets and signing material live: WITH THE STORE.
For ``sqlite:///x/audit.db`` that is the file ``x/audit.keys.db``; for ``postgresql://...`` the
same database (so every replica over it shares them); for any other store
``./auditbird.keys.db``. ``serve``, every ``keys`` command and ``keys viewer-link`` take the
store from ``--store`` (before or after the command name) or ``AUDITBIRD_URL``, the same way,
and find the keys with :func:`auditbird.service.keys.keys_location_for`; ``--keys``/``AUDITBIRD_KEYS``
(a file or a ``postgresql://`` URL, e.g. keys in PostgreSQL for events in Tinybird) overrides it
for all of them.
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
from .output import print_table

__all__ = ["register"]


KEYS_RULE = (
    "Keys, viewer-link secrets and signing material live beside the store: for "
    "--store sqlite:///x/audit.db in x/audit.keys.db, for --store postgresql://... in that "
    "database (else ./auditbird.keys.db); `serve`, `keys` and `keys viewer-link` find them the same way."
)

keys_app = typer.Typer(
    help="API keys for `auditbird serve`: each has one workspace and one scope. "
    + KEYS_RULE
    + "\n\nExample: auditbird keys create --store sqlite:///audit.db --workspace acme --scope admin",
    no_args_is_help=True,
)

KeysOption = Annotated[
    str | None,
    typer.Option(
        "--keys",
        envvar="AUDITBIRD_KEYS",
        help="Keys file, or a postgresql:// URL to keep them in; default: beside the store "
        "(sqlite:///x/audit.db -> x/audit.keys.db; postgresql://... -> that database)",
    ),
]
StoreOption = Annotated[
    str | None,
    typer.Option(
        "--store",
        help="The store the server serves (overrides the global --store/AUDITBIRD_URL); "
        "its keys file is beside it",
    ),
]


def store_url(store: str | None) -> str:
    """The store a key command or `serve` is about: its own --store, else the global one."""
    return store or settings.store


def keys_file(keys: str | None, store: str | None) -> Path | str:
    """Where the keys of ``store`` live (see the module docstring); ``keys`` overrides:
    a file path, or a ``postgresql://`` URL."""
    try:
        from ..service.keys import is_postgres_url, keys_location_for
    except ModuleNotFoundError as exc:  # fastapi missing: the service extra is not installed
        fail(f"{exc.name} is missing; install the service extra: pip install 'auditbird[service]'", code=1)
    if keys:
        return keys if is_postgres_url(keys) else Path(keys)
    return keys_location_for(store_url(store))


def open_keys(location: Path | str) -> Any:
    """The key store at ``location``; a wrong URL, a server that refuses, a schema it cannot
    create or newer than this code: one line saying what to do, exit 2."""
    from .._errors import StoreUnavailable
    from ..service.keys import KeyStore

    try:
        return KeyStore(location)
    except (ValueError, StoreUnavailable) as exc:
        fail(f"keys at {shown(location)}: {exc}")


def shown(location: Path | str) -> str:
    """A keys location fit for output: a path as it is, a URL without credentials."""
    return redact_url(location) if isinstance(location, str) else str(location)


class ScopeChoice(StrEnum):
    read = "read"
    write = "write"
    admin = "admin"


def _key_store(keys: str | None, store: str | None) -> Any:
    return open_keys(keys_file(keys, store))


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
    store_opt: StoreOption = None,
    keys: KeysOption = None,
) -> None:
    """Create a key. It is shown once (last line, or JSON with --json); only its hash is kept.

    It goes to the keys beside the store (its keys file, or its PostgreSQL database), which
    `auditbird serve` over that store reads.

    Example: auditbird keys create --store sqlite:///audit.db --workspace acme --scope admin
    """
    store = _key_store(keys, store_opt)
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
        f"{_keys_line(store)}\n"
        "store it now: it is shown only this once\n"
        f"{created.secret}\n"
    )


@keys_app.command("list")
def keys_list(
    all_keys: Annotated[bool, typer.Option("--all", help="Include revoked keys")] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
    store_opt: StoreOption = None,
    keys: KeysOption = None,
) -> None:
    """Keys by id, workspace and scope (never the secret: it is not stored).

    Example: auditbird keys list --store sqlite:///audit.db --json
    """
    store = _key_store(keys, store_opt)
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
    rows = (
        (
            k.key_id,
            k.workspace or "(default)",
            k.scope,
            k.name,
            "" if k.rate is None else f"{k.rate:g}",
            _when(k.created_at),
            _when(k.revoked_at),
        )
        for k in found
    )
    columns = ("id", "workspace", "scope", "name", "rate/s", "created", "revoked")
    print_table(columns, rows, title=f"{len(found)} key(s) in {store.where}")


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="The key's id (from `keys list`) or the key itself")],
    store_opt: StoreOption = None,
    keys: KeysOption = None,
) -> None:
    """Revoke a key: requests with it are refused from now on.

    Example: auditbird keys revoke --store sqlite:///audit.db k_0123abcd
    """
    store = _key_store(keys, store_opt)
    try:
        revoked = store.revoke(key_id)
    finally:
        store.close()
    if not revoked:
        fail(f"no live key {key_id!r}; see `auditbird keys list`")
    sys.stdout.write(f"revoked {key_id}\n")


def _keys_line(store: Any) -> str:
    """Where the keys went: ``keys file: PATH`` or ``keys database: postgresql://host/db``."""
    from ..service.keys_sqlite import SqliteKeyStore

    return (
        f"keys file: {store.path}" if isinstance(store, SqliteKeyStore) else f"keys database: {store.where}"
    )


def serve(
    host: Annotated[str, typer.Option("--host", help="Interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on")] = 8000,
    store: StoreOption = None,
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
    """Serve the REST API (and the web viewer) over the store. Docs at /docs.

    Keys and viewer links are checked in the keys beside the store (its keys file, or its PostgreSQL
    database, shared by every replica): create them with the same --store.

    Example: auditbird serve --store sqlite:///audit.db --port 8000
    """
    try:
        import uvicorn
    except ModuleNotFoundError as exc:
        fail(f"{exc.name} is missing; install the service extra: pip install 'auditbird[service]'", code=1)
    url = store_url(store)
    location = keys_file(keys, store)
    open_keys(location).close()  # a wrong keys URL or schema: one line now, not a worker's traceback
    # The app is built by a factory from the environment, so that --workers processes agree.
    env = {
        "AUDITBIRD_URL": url,
        "AUDITBIRD_KEYS": str(location),
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
        f"(docs: /docs, keys: {shown(location)})\n"
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
