"""publish, log, query, actions: the commands over the library."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from .._errors import AuditError, AuditValidationError
from ..actions import default_registry
from ._app import app, err, fail, settings
from .output import Format, print_events

BATCH = 1_000
PROGRESS_AFTER = 5_000  # bytes of stdin beyond which a progress bar is worth showing


def _parse_json(text: str, where: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        fail(f"{where}: not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})")


@app.command()
def publish(
    event: Annotated[
        str | None,
        typer.Argument(help="One event (JSON object) or a JSON array; `-` or nothing reads NDJSON on stdin"),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only the count")] = False,
) -> None:
    """Publish events: a JSON argument, or NDJSON on stdin (one event per line; `-` or no argument).

    Example: auditbird publish '{"id": "monitor:1", "action": "monitor.down"}'

    Example: auditbird publish - < events.ndjson
    """
    with settings.open_log() as log:
        try:
            if event is not None and event != "-":
                data = _parse_json(event, "argument")
                if isinstance(data, list):
                    stored = log.publish_many(data)
                else:
                    stored = [log.publish_audit_log(data)]
                if not quiet:
                    for e in stored:
                        sys.stdout.write(json.dumps(e.to_dict(), ensure_ascii=False) + "\n")
                err.print(f"published {len(stored)} event(s)", highlight=False)
                return
            total = _publish_stdin(log)
        except AuditValidationError as exc:
            fail(exc)
        except AuditError as exc:
            fail(exc, code=1)
    err.print(f"published {total} event(s)", highlight=False)


def _publish_stdin(log: Any) -> int:
    """NDJSON from stdin in batches of 1,000. Each batch is all or nothing; a bad line stops
    the run before its batch is written, and the message says which line."""
    if sys.stdin.isatty():
        fail("no event given: pass a JSON argument or pipe NDJSON on stdin")
    total = 0
    batch: list[Any] = []
    first_line = 1
    progress = Progress(
        TextColumn("publishing"),
        BarColumn(),
        TextColumn("{task.completed:,} events"),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,
    )
    with progress:
        task = progress.add_task("publish", total=None)
        for lineno, line in enumerate(sys.stdin, 1):
            if not line.strip():
                continue
            if not batch:
                first_line = lineno
            batch.append(_parse_json(line, f"line {lineno}"))
            if len(batch) >= BATCH:
                total += _flush(log, batch, first_line, total)
                progress.update(task, completed=total)
                batch = []
        if batch:
            total += _flush(log, batch, first_line, total)
    return total


def _flush(log: Any, batch: list[Any], first_line: int, done: int) -> int:
    try:
        log.publish_many(batch)
    except AuditValidationError as exc:
        for p in exc.problems:
            where = f"line {first_line + (p.index or 0)}"
            err.print(f"error: {where}: {p.loc}: {p.msg}", markup=False, highlight=False)
        err.print(
            f"error: {done} event(s) published before this batch; none of it was stored",
            markup=False,
            highlight=False,
        )
        raise typer.Exit(2) from None
    return len(batch)


@app.command("log")
def log_cmd(
    event_id: Annotated[str, typer.Argument(help="The stream's key (an event's id), e.g. monitor:1")],
    limit: Annotated[int | None, typer.Option(help="At most this many events")] = None,
    fmt: Annotated[Format, typer.Option("--format", "-f")] = Format.table,
) -> None:
    """A stream's history, newest first (the seed's getAuditLog).

    Piped, the table is tab-separated, one event per line.

    Example: auditbird log monitor:1 --limit 10
    """
    with settings.open_log() as log:
        try:
            events = log.get_audit_log(event_id, limit=limit)
        except AuditValidationError as exc:
            fail(exc)
        print_events(events, fmt, title=f"{event_id}: {len(events)} events, newest first")


@app.command()
def query(
    action: Annotated[list[str] | None, typer.Option("--action", "-a", help="Repeatable")] = None,
    actor: Annotated[str | None, typer.Option("--actor", help="Actor id")] = None,
    target_type: Annotated[str | None, typer.Option("--target-type")] = None,
    target_id: Annotated[str | None, typer.Option("--target-id")] = None,
    event_id: Annotated[
        str | None, typer.Option("--id", help="The stream's key (an event's id), e.g. monitor:1")
    ] = None,
    since: Annotated[str | None, typer.Option(help="1h, 7d, ISO 8601 or ms")] = None,
    until: Annotated[str | None, typer.Option(help="1h, 7d, ISO 8601 or ms")] = None,
    text: Annotated[
        str | None, typer.Option("--text", help="Substring of the event id or the metadata")
    ] = None,
    limit: Annotated[int, typer.Option(help="Events per page (1..10000)")] = 50,
    cursor: Annotated[str | None, typer.Option(help="next_cursor of a previous page")] = None,
    all_pages: Annotated[bool, typer.Option("--all", help="Follow cursors to the end")] = False,
    fmt: Annotated[Format, typer.Option("--format", "-f")] = Format.table,
    raw: Annotated[
        bool, typer.Option("--raw", help="CSV: cells exactly as stored (no formula guard)")
    ] = False,
) -> None:
    """Filter the log, newest first. Prints next_cursor on stderr when there is more.

    Example: auditbird query --action monitor.down --since 1h --format csv

    Example: auditbird query --target-type monitor --target-id 1 --format ndjson --all
    """
    filters: dict[str, Any] = dict(
        action=action or None,
        actor_id=actor,
        target_type=target_type,
        target_id=target_id,
        since=since,
        until=until,
        event_id=event_id,
        text=text,
    )
    with settings.open_log() as log:
        try:
            if all_pages:
                print_events(log.iter_events(page_size=limit, cursor=cursor, **filters), fmt, raw=raw)
                return
            page = log.list(limit=limit, cursor=cursor, **filters)
        except AuditValidationError as exc:
            fail(exc)
        print_events(page.events, fmt, title=f"{len(page.events)} events, newest first", raw=raw)
        if page.next_cursor:
            # A plain write: a console would wrap the cursor at its width when stderr is a pipe.
            sys.stderr.write(f"next_cursor: {page.next_cursor}\n")


@app.command()
def actions() -> None:
    """Registered action schemas, as JSON Schema (load yours with --actions MODULE).

    Example: auditbird --actions auditbird.catalog.openstatus actions
    """
    sys.stdout.write(json.dumps(default_registry.json_schemas(), indent=2) + "\n")
