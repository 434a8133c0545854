"""``auditbird keys viewer-link``: a short-lived, read-only link that signs a person into the viewer."""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime
from typing import Annotated

import typer
from pydantic import TypeAdapter, ValidationError

from ..event import Event
from ._app import fail
from .service import KeysOption, StoreOption, keys_file, open_keys, shown

__all__ = ["register", "viewer_link"]


def viewer_link(
    workspace: Annotated[str, typer.Option("--workspace", help="The one workspace the link can read")],
    actor: Annotated[
        str | None, typer.Option("--actor", help="Show only this actor's events (actor id)")
    ] = None,
    target: Annotated[
        str | None, typer.Option("--target", help="Show only events on this target, TYPE:ID (monitor:1)")
    ] = None,
    expires: Annotated[str, typer.Option("--expires", help="Lifetime: 15m, 1h, 7d (at most 30d)")] = "1h",
    url: Annotated[
        str,
        typer.Option("--url", envvar="AUDITBIRD_VIEWER_URL", help="Where `auditbird serve` is reachable"),
    ] = "http://127.0.0.1:8000",
    revoke_all: Annotated[
        bool, typer.Option("--revoke-all", help="Revoke every viewer link made so far, then make this one")
    ] = False,
    store: StoreOption = None,
    keys: KeysOption = None,
) -> None:
    """Print a read-only viewer link for one workspace; it works until it expires (alone on the last line).

    Signed with the secret kept with the keys beside the store: `auditbird serve` over it accepts it.

    Example: auditbird keys viewer-link --store sqlite:///audit.db --workspace acme --expires 1h
    """
    try:
        from ..service.viewer_links import Grant, ViewerLinks, link_url, parse_duration, parse_target
    except ModuleNotFoundError as exc:
        fail(f"{exc.name} is missing; install the service extra: pip install 'auditbird[service]'", code=1)
    _check_workspace(workspace)
    try:
        ttl = parse_duration(expires)
        target_type, target_id = parse_target(target) if target else (None, None)
    except ValueError as exc:
        fail(str(exc))
    location = keys_file(keys, store)
    links = ViewerLinks(open_keys(location))
    try:
        if revoke_all:
            links.rotate()
        expires_at = int(time.time() * 1000) + ttl
        token = links.sign(
            Grant(
                workspace=workspace,
                expires_at=expires_at,
                actor_id=actor,
                target_type=target_type,
                target_id=target_id,
            )
        )
    finally:
        links.keys.close()
    until = datetime.fromtimestamp(expires_at / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    scope = f"workspace {workspace or '(default)'}"
    if actor:
        scope += f", actor {actor}"
    if target:
        scope += f", target {target}"
    sys.stdout.write(
        f"{'revoked every earlier viewer link; ' if revoke_all else ''}"
        f"read-only viewer link for {scope}, valid until {until} ({_where(location)})\n"
        f"{link_url(url, token)}\n"
    )


def _where(location: object) -> str:
    if isinstance(location, str):
        return f"keys database: {shown(location)}"
    return f"keys file: {location}"


def _check_workspace(workspace: str) -> None:
    """The rule an event's workspace follows (and so `keys create`): a link to a workspace no
    event can carry would show nothing."""
    field = Event.model_fields["workspace"]
    try:
        TypeAdapter(Annotated[str, *field.metadata]).validate_python(workspace)
    except ValidationError:
        fail(f"workspace {workspace!r} may contain only letters, digits and _.:@/+=- (128 at most)")


def register(app: typer.Typer) -> None:
    from .service import keys_app

    keys_app.command("viewer-link")(viewer_link)
