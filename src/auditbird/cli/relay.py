"""``auditbird relay``: ship events committed to a SQLite file to another store (the outbox relay)."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)

from .._errors import AuditError
from ._app import err, fail


def relay(
    source: Annotated[
        str,
        typer.Option(
            "--from", help="Where events are committed: sqlite:///app.db or postgresql://user@host/app"
        ),
    ],
    destination: Annotated[
        str, typer.Option("--to", help="Store to ship them to: tinybird://TOKEN@HOST, sqlite:///copy.db, ...")
    ],
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep shipping new events until stopped")
    ] = False,
    batch: Annotated[int, typer.Option("--batch", min=1, max=10_000, help="Events per shipment")] = 500,
    name: Annotated[
        str | None,
        typer.Option("--name", help="Key of the stored position in the source file; default: the --to URL"),
    ] = None,
    position_file: Annotated[
        Path | None, typer.Option("--position-file", help="Keep the position in this file instead")
    ] = None,
    poll_interval: Annotated[
        float, typer.Option("--poll-interval", help="Seconds between polls (--follow)")
    ] = 0.5,
) -> None:
    """Ship committed events in commit order, at least once, resuming where the last run stopped.

    The position is stored after every shipment the destination acknowledged; a crash ships at
    most that one batch again, and the destination never keeps a duplicate (uid).
    """
    from ..relay import Relay  # the relay imports the stores; keep `auditbird --help` quick

    if not source.startswith(("sqlite:", "postgresql:", "postgres:")):
        fail(
            f"--from {source!r}: the relay reads a SQLite file or a PostgreSQL database, e.g. "
            "sqlite:///app.db or postgresql://user@host/app"
        )
    try:
        rel = Relay(source, destination, name=name, position_file=position_file, batch=batch)
    except (ValueError, AuditError) as exc:
        fail(str(exc))
    stop = threading.Event()

    def _stop(signum: int, frame: Any) -> None:
        stop.set()

    previous = signal.signal(signal.SIGTERM, _stop)
    progress = Progress(
        TextColumn(f"relay → {rel.name}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TextColumn("position {task.fields[position]:,}"),
        TimeElapsedColumn(),
        console=err,
        disable=not err.is_terminal,
    )
    shipped = 0
    try:
        with rel, progress:
            task = progress.add_task("relay", total=rel.pending(), position=rel.position)

            def on_batch(count: int, position: int) -> None:
                nonlocal shipped
                shipped += count
                # New commits (--follow) grow the total as they arrive.
                progress.update(task, total=shipped + rel.pending(), completed=shipped, position=position)

            rel.run(follow=follow, poll_interval=poll_interval, stop=stop, on_batch=on_batch)
            position = rel.position
    except KeyboardInterrupt:
        position = rel.position
    except AuditError as exc:
        err.print(f"stopped after {shipped:,} event(s) at position {rel.position:,}", highlight=False)
        fail(exc, code=1)
    finally:
        signal.signal(signal.SIGTERM, previous)
    err.print(f"relayed {shipped:,} event(s); position {position:,}", highlight=False)


def register(app: typer.Typer) -> None:
    app.command("relay")(relay)
