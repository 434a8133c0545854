"""``auditbird streams``: log streams of a workspace (webhook, syslog, NDJSON files) and alerts.

Example: auditbird --store sqlite:///audit.db --workspace acme streams add siem --webhook https://siem.example/hook
"""

from __future__ import annotations

import json
import signal
import threading
from typing import Annotated, Any

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
        str | None, typer.Option("--ndjson", help="Append NDJSON to this file, rotated by size and time")
    ] = None,
    otlp: Annotated[
        str | None,
        typer.Option("--otlp", help="OpenTelemetry logs over OTLP/HTTP to this collector URL (/v1/logs)"),
    ] = None,
    header: Annotated[
        list[str],
        typer.Option("--header", help="OTLP: a header the collector needs, 'Name: value' (repeatable)"),
    ] = [],  # noqa: B006
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
    rotate_every: Annotated[
        str | None,
        typer.Option("--rotate-every", help="NDJSON: also start a new file each period: 30m, 1h, 1d"),
    ] = None,
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
    from ..streams import StreamFilter, StreamTarget, create_stream

    kinds = (("webhook", webhook), ("syslog", syslog), ("ndjson", ndjson), ("otlp", otlp))
    chosen = [k for k, v in kinds if v]
    if len(chosen) != 1:
        fail("give exactly one of --webhook URL, --syslog tcp://HOST:PORT, --ndjson PATH, --otlp URL")
    kind = chosen[0]
    try:
        if webhook:
            target = StreamTarget.webhook(webhook, secret=secret, batched=batched)
        elif syslog:
            target = StreamTarget.syslog(syslog, ca_file=ca_file)
        elif otlp:
            pairs = [h.partition(":") for h in header]
            if any(not sep for _, sep, _ in pairs):
                raise ValueError("--header: write it as 'Name: value'")
            target = StreamTarget.otlp(otlp, headers={n.strip(): v.strip() for n, _, v in pairs})
        else:
            assert ndjson is not None
            target = StreamTarget.ndjson(ndjson, max_bytes=max_bytes, keep=keep, rotate_every=rotate_every)
        filt = StreamFilter(
            actions=_csv(action),
            target_type=target_type,
            target_id=target_id,
            actor_in=_csv(actor_in),
            actor_not_in=_csv(actor_not_in),
        )
    except ValueError as exc:  # a bad address, secret or filter: say which
        fail(f"cannot add stream {name!r}: {exc}")
    try:
        create_stream(
            settings.store,
            settings.workspace,
            name,
            target,
            filter=filt,
            max_attempts=max_attempts,
            from_now=from_now,
        )
    except ValueError as exc:
        fail(exc)
    err.print(f"added {kind} stream {name!r} ({filt.describe()})", highlight=False)
    if kind == "webhook" and not secret:
        # Printed once, on stdout, for the receiver's configuration; `streams list` never shows it.
        typer.echo(target.options["secret"])


@streams_app.command("list")
def list_streams(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per stream")] = False,
) -> None:
    """The --workspace's streams: kind, filter, delivered, lag (events and seconds behind),
    failures, last error, dead letters.

    Example: auditbird --workspace acme streams list --json
    """
    from ..streams import stream_statuses

    try:
        statuses = stream_statuses(settings.store, settings.workspace)
    except ValueError as exc:
        fail(exc)
    for status in statuses:
        item = status.to_dict()
        if as_json:
            typer.echo(json.dumps(item))
            continue
        behind = f"{item['events_behind']}{'+' if item['behind_capped'] else ''}"
        typer.echo(
            f"{item['name']}\t{item['kind']}{' (paused)' if item['paused'] else ''}\t{item['filter']}"
            f"\tdelivered={item['delivered']}\tbehind={behind} ({item['seconds_behind']:.0f} s)"
            f"\tdead_letters={item['dead_letters']}\tlast_error={item['last_error'] or '-'}"
        )


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


def _set_paused(name: str, paused: bool) -> None:
    with _registry() as registry:
        try:
            registry.set_paused(settings.workspace, name, paused)
        except KeyError as exc:
            fail(exc.args[0])
    err.print(f"{'paused' if paused else 'resumed'} stream {name!r}", highlight=False)


@streams_app.command("pause")
def pause(name: Annotated[str, typer.Argument(help="The stream to pause")]) -> None:
    """Pause a stream: a following runner stops it within seconds; its position is kept.

    Example: auditbird --workspace acme streams pause siem
    """
    _set_paused(name, True)


@streams_app.command("resume")
def resume(name: Annotated[str, typer.Argument(help="The stream to resume")]) -> None:
    """Resume a paused stream from its position: nothing committed meanwhile is skipped.

    Example: auditbird --workspace acme streams resume siem
    """
    _set_paused(name, False)


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
        replayed, error = replay_dead_letters(registry, stream, store_url=settings.store)
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
    if not runner.streams and not follow:
        # Following, it waits: streams added or resumed later start within seconds.
        fail("no stream to run (none added, or all paused); add one with `auditbird streams add`")

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
