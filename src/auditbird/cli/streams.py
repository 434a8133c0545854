"""``auditbird streams``: log streams of a workspace (webhook, syslog, NDJSON files) and alerts.

Example: auditbird --store sqlite:///audit.db --workspace acme streams add siem --webhook https://siem.example/hook
"""

from __future__ import annotations

import json
import signal
import threading
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

import typer

from ._app import err, fail, settings

streams_app = typer.Typer(
    name="streams",
    help="Log streams: deliver every committed event of a workspace, in order, at least once.",
    no_args_is_help=True,
)


def _registry() -> Any:
    from ..streams import StreamRegistry

    try:
        return StreamRegistry.for_store(settings.store)
    except ValueError as exc:
        fail(exc)


def _csv(values: list[str]) -> tuple[str, ...]:
    return tuple(v.strip() for item in values for v in item.split(",") if v.strip())


@streams_app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="The stream's name in its workspace")],
    webhook: Annotated[str | None, typer.Option("--webhook", help="POST events to this URL (signed)")] = None,
    syslog: Annotated[
        str | None,
        typer.Option("--syslog", help="RFC 5424 over TCP or TLS: tcp://HOST:PORT, tls://HOST:PORT"),
    ] = None,
    ca_file: Annotated[
        str | None,
        typer.Option("--ca-file", help="Syslog over TLS: CA certificates (PEM); default: the system's"),
    ] = None,
    ndjson: Annotated[
        str | None, typer.Option("--ndjson", help="Append NDJSON to this file, rotated by size")
    ] = None,
    secret: Annotated[
        str | None,
        typer.Option("--secret", help="Webhook signing secret (whsec_...); default: a new one, printed"),
    ] = None,
    batched: Annotated[
        bool, typer.Option("--batched", help="One webhook request per batch, not per event")
    ] = False,
    max_bytes: Annotated[int, typer.Option("--max-bytes", min=1024, help="NDJSON: rotate at this size")] = 100
    * 1024
    * 1024,
    keep: Annotated[int, typer.Option("--keep", min=1, max=1000, help="NDJSON: rotated files kept")] = 5,
    action: Annotated[
        list[str], typer.Option("--action", help="Only these actions (repeat or comma-separate)")
    ] = [],  # noqa: B006
    target_type: Annotated[
        str | None, typer.Option("--target-type", help="Only events with a target of this type")
    ] = None,
    target_id: Annotated[
        str | None, typer.Option("--target-id", help="Only events with a target of this id")
    ] = None,
    actor_in: Annotated[
        list[str], typer.Option("--actor-in", help="Alert: only when one of these actors acted")
    ] = [],  # noqa: B006
    actor_not_in: Annotated[
        list[str], typer.Option("--actor-not-in", help="Alert: only when someone outside these actors acted")
    ] = [],  # noqa: B006
    max_attempts: Annotated[
        int,
        typer.Option("--max-attempts", min=1, max=100, help="Refusals (4xx) before a batch is dead-lettered"),
    ] = 5,
    from_now: Annotated[bool, typer.Option("--from-now", help="Skip the events already committed")] = False,
) -> None:
    """Add a stream (or, with --actor-in/--actor-not-in, an alert) to the --workspace.

    Example: auditbird --workspace acme streams add ops-alert --webhook https://ops.example/hook
    --action monitor.deleted --actor-not-in alice,bob
    """
    from ..relay import PositionTable
    from ..stores.sqlite import SQLiteStore
    from ..streams import StreamFilter, new_secret

    chosen = [k for k, v in (("webhook", webhook), ("syslog", syslog), ("ndjson", ndjson)) if v]
    if len(chosen) != 1:
        fail("give exactly one of --webhook URL, --syslog tcp://HOST:PORT, --ndjson PATH")
    kind = chosen[0]
    options: dict[str, Any]
    printed_secret = None
    if kind == "webhook":
        assert webhook is not None
        if not webhook.startswith(("http://", "https://")):
            fail(f"--webhook {webhook!r}: use an http:// or https:// URL")
        printed_secret = secret or new_secret()
        options = {"url": webhook, "secret": printed_secret, "batched": batched}
    elif kind == "syslog":
        parts = urlsplit(syslog or "")
        if parts.scheme not in ("tcp", "tls") or not parts.hostname or not parts.port:
            fail(f"--syslog {syslog!r}: use tcp://HOST:PORT (RFC 5424 over TCP) or tls://HOST:PORT")
        if ca_file is not None and not Path(ca_file).is_file():
            fail(f"--ca-file {ca_file!r}: no such file; give the PEM file of the CA that signed the server")
        options = {
            "host": parts.hostname,
            "port": parts.port,
            "tls": parts.scheme == "tls",
            "ca_file": ca_file,
        }
    else:
        options = {"path": ndjson, "max_bytes": max_bytes, "keep": keep}
    try:
        filt = StreamFilter(
            actions=_csv(action),
            target_type=target_type,
            target_id=target_id,
            actor_in=_csv(actor_in),
            actor_not_in=_csv(actor_not_in),
        )
        if kind == "webhook":
            from standardwebhooks import Webhook

            Webhook(options["secret"])
    except Exception as exc:  # a bad filter or secret: say which
        fail(f"cannot add stream {name!r}: {exc}")
    with _registry() as registry:
        try:
            stream = registry.add(
                name,
                workspace=settings.workspace,
                kind=kind,
                options=options,
                filter=filt,
                max_attempts=max_attempts,
            )
        except ValueError as exc:
            fail(exc)
        if from_now:
            store = SQLiteStore.from_url(settings.store)
            try:
                positions = PositionTable(store.path, stream.position_name)
                positions.save(store.last_position())
                positions.close()
            finally:
                store.close()
    err.print(f"added {kind} stream {name!r} ({filt.describe()})", highlight=False)
    if printed_secret and not secret:
        # Printed once, on stdout, for the receiver's configuration; `streams list` never shows it.
        typer.echo(printed_secret)


@streams_app.command("list")
def list_streams(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per stream")] = False,
) -> None:
    """The --workspace's streams: kind, filter, delivered, pending, last error, dead letters.

    Example: auditbird --workspace acme streams list --json
    """
    from ..streams import StreamRunner

    try:
        runner = StreamRunner(settings.store, workspace=settings.workspace)
    except ValueError as exc:
        fail(exc)
    try:
        pending = runner.pending()
        for s in runner.streams:
            item = {
                "name": s.name,
                "kind": s.kind,
                "options": s.public_options(),
                "filter": s.filter.describe(),
                "delivered": s.delivered,
                "pending": pending[s.name],
                "last_delivery_at": s.last_delivery_at,
                "last_error": s.last_error,
                "dead_letters": s.dead_letters,
            }
            if as_json:
                typer.echo(json.dumps(item))
            else:
                typer.echo(
                    f"{s.name}\t{s.kind}\t{s.filter.describe()}\tdelivered={s.delivered}\tpending={pending[s.name]}"
                    f"\tdead_letters={s.dead_letters}\tlast_error={s.last_error or '-'}"
                )
    finally:
        runner.close()


@streams_app.command("remove")
def remove(name: Annotated[str, typer.Argument(help="The stream to remove")]) -> None:
    """Remove a stream and its dead letters.

    Example: auditbird --workspace acme streams remove siem
    """
    with _registry() as registry:
        try:
            registry.remove(settings.workspace, name)
        except KeyError as exc:
            fail(exc.args[0])
    err.print(f"removed stream {name!r}", highlight=False)


@streams_app.command("rotate-secret")
def rotate_secret(
    name: Annotated[str, typer.Argument(help="A webhook stream")],
    grace_hours: Annotated[
        float, typer.Option("--grace-hours", min=0, max=24 * 30, help="Old secret stays valid")
    ] = 24,
) -> None:
    """A new webhook signing secret (printed); the old one signs beside it for --grace-hours.

    Example: auditbird --workspace acme streams rotate-secret siem --grace-hours 48
    """
    with _registry() as registry:
        try:
            fresh = registry.rotate_secret(settings.workspace, name, grace_ms=int(grace_hours * 3_600_000))
        except (KeyError, ValueError) as exc:
            fail(exc.args[0])
    typer.echo(fresh)


@streams_app.command("dead-letters")
def dead_letters(name: Annotated[str, typer.Argument(help="The stream")]) -> None:
    """The stream's dead letters, oldest first: one JSON object each (uid, error, attempts, event).

    Example: auditbird --workspace acme streams dead-letters siem
    """
    from ..row import row_to_json

    with _registry() as registry:
        try:
            stream = registry.get(settings.workspace, name)
        except KeyError as exc:
            fail(exc.args[0])
        for letter in registry.dead_letters(stream.id):
            typer.echo(
                json.dumps(
                    {
                        "id": letter.id,
                        "uid": letter.row.uid,
                        "error": letter.error,
                        "attempts": letter.attempts,
                        "event": row_to_json(letter.row),
                    }
                )
            )


@streams_app.command("replay-dead-letters")
def replay(name: Annotated[str, typer.Argument(help="The stream")]) -> None:
    """Deliver the stream's dead letters again; those delivered are forgotten.

    Example: auditbird --workspace acme streams replay-dead-letters siem
    """
    from ..streams import replay_dead_letters

    with _registry() as registry:
        try:
            stream = registry.get(settings.workspace, name)
        except KeyError as exc:
            fail(exc.args[0])
        replayed, error = replay_dead_letters(registry, stream)
    err.print(f"replayed {replayed} dead letter(s)", highlight=False)
    if error:
        fail(f"stopped at a refusal, the rest stay dead-lettered: {error}", code=1)


@streams_app.command("run")
def run(
    names: Annotated[list[str] | None, typer.Argument(help="Streams to run; default: every stream")] = None,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep delivering new events until stopped")
    ] = False,
    batch: Annotated[int, typer.Option("--batch", min=1, max=10_000, help="Events per delivery")] = 100,
    poll_interval: Annotated[float, typer.Option("--poll-interval", help="Seconds between polls")] = 0.2,
    all_workspaces: Annotated[
        bool, typer.Option("--all-workspaces", help="Run every workspace's streams")
    ] = False,
    retry_base: Annotated[
        float, typer.Option("--retry-base", min=0.001, help="First retry's backoff, seconds")
    ] = 0.5,
    retry_cap: Annotated[
        float, typer.Option("--retry-cap", min=0.001, help="Longest backoff, seconds")
    ] = 30.0,
) -> None:
    """Deliver the streams' events, resuming at each stream's stored position.

    Example: auditbird --store sqlite:///audit.db streams run --all-workspaces --follow
    """
    from ..streams import Backoff, StreamRunner

    stop = threading.Event()
    try:
        runner = StreamRunner(
            settings.store,
            workspace=None if all_workspaces else settings.workspace,
            names=names or (),
            batch=batch,
            backoff=Backoff(retry_base, retry_cap),
            stop=stop,
        )
    except (KeyError, ValueError) as exc:
        fail(exc.args[0])
    if not runner.streams:
        fail("no stream to run; add one with `auditbird streams add`")

    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        total = runner.run(follow=follow, poll_interval=poll_interval)
    except KeyboardInterrupt:
        stop.set()
        total = 0
    finally:
        signal.signal(signal.SIGTERM, previous)
        runner.close()
    for stream_name, problem in runner.errors.items():
        err.print(f"stream {stream_name!r} stopped: {type(problem).__name__}: {problem}", highlight=False)
    err.print(f"read {total:,} committed event(s)", highlight=False)
    if runner.errors:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.add_typer(streams_app, name="streams")
