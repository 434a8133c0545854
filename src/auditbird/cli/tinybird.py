"""``auditbird tinybird local`` and ``auditbird tinybird datafiles DIR``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from ._app import fail

__all__ = ["register"]

tinybird_app = typer.Typer(
    name="tinybird",
    help="Tinybird: the shipped datafiles, and a Tinybird-compatible local server on chDB.",
    no_args_is_help=True,
)


@tinybird_app.command("local")
def local(
    host: Annotated[str, typer.Option("--host", help="Interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on")] = 7181,
    data: Annotated[
        Path | None,
        typer.Option(
            "--data",
            help="Folder for the data and what `tb deploy`/`tb push` added (kept across restarts); "
            "default: temporary",
        ),
    ] = None,
    datafiles: Annotated[
        list[Path] | None,
        typer.Option("--datafiles", help="Folder of extra .datasource/.pipe files to load (repeatable)"),
    ] = None,
    token: Annotated[
        str | None,
        typer.Option("--token", envvar="TINYBIRD_LOCAL_TOKEN", help="Token to accept; default: generated"),
    ] = None,
    fail_rate: Annotated[
        float, typer.Option("--fail-rate", help="Fraction of API requests answered 503/429 (fault mode)")
    ] = 0.0,
    throttle: Annotated[
        int | None, typer.Option("--throttle", help="Requests per second allowed per datasource or pipe")
    ] = None,
    retry_after: Annotated[int, typer.Option("--retry-after", help="Seconds sent in Retry-After")] = 1,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the fault mode's random choices")] = 0,
) -> None:
    """Run a Tinybird-compatible server (Events, Pipes and Query APIs, and the routes Tinybird's CLIs
    call) on embedded ClickHouse. What it implements: docs/tinybird-compatibility.md."""
    try:
        from ..tinybird.local.server import serve
    except ImportError as exc:
        fail(f"the local server needs chDB and Tornado: pip install 'auditbird[local]' ({exc})")
    if not 0.0 <= fail_rate <= 1.0:
        fail(f"--fail-rate must be between 0 and 1, not {fail_rate}")
    if throttle is not None and throttle < 1:
        fail(f"--throttle must be at least 1 request per second, not {throttle}")
    for folder in datafiles or []:
        if not folder.is_dir():
            fail(f"--datafiles {folder}: not a folder")
    if data is not None and data.exists() and not data.is_dir():
        fail(f"--data {data}: not a folder")
    from ..tinybird.datafiles import DatafileError

    try:
        serve(
            host=host,
            port=port,
            data=data,
            datafiles=datafiles or [],
            token=token,
            fail_rate=fail_rate,
            throttle=throttle,
            retry_after=retry_after,
            seed=seed,
        )
    except DatafileError as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}", code=1)


@tinybird_app.command("datafiles")
def datafiles_command(
    dest: Annotated[Path, typer.Argument(help="Folder to write datasources/ and pipes/ into")],
) -> None:
    """Write the shipped datafiles into DEST: a project for `tb deploy` (current CLI) or `tb push`."""
    from ..tinybird.datafiles import write_datafiles

    if dest.exists() and not dest.is_dir():
        fail(f"{dest}: not a folder")
    try:
        written = write_datafiles(dest)
    except OSError as exc:
        fail(f"cannot write into {dest}: {exc.strerror or exc}", code=1)
    for path in written:
        sys.stdout.write(f"{path}\n")
    sys.stderr.write(
        f"wrote {len(written)} datafiles into {dest}; deploy them with Tinybird's current CLI "
        f"(pip install tinybird):\n  cd {dest} && tb --cloud deploy\n"
        "or push them with the Classic CLI (pip install tinybird-cli):\n"
        + "".join(f"  tb push {p.relative_to(dest)}\n" for p in written)
    )


@tinybird_app.command("migrate")
def migrate_command(
    source: Annotated[
        str,
        typer.Option(
            "--from",
            help="The OpenStatus workspace: tinybird://TOKEN@HOST (datasource audit_log__v0 unless "
            "?datasource= names another)",
        ),
    ],
    destination: Annotated[
        str,
        typer.Option(
            "--to", help="Where to copy: tinybird://TOKEN@HOST (auditbird's datasource), sqlite:///a.db"
        ),
    ],
    workspace: Annotated[str, typer.Option("--workspace", help="Workspace the events go to")] = "",
    state: Annotated[
        Path | None,
        typer.Option(
            "--state", help="Checkpoint file to resume from; default: ./auditbird-migrate-<hash>.json"
        ),
    ] = None,
    page_rows: Annotated[
        int, typer.Option("--page-rows", min=1, max=10_000, help="Source rows read per page")
    ] = 1_000,
) -> None:
    """Copy an OpenStatus workspace's audit rows into auditbird's datasource: resumable, idempotent.

    Run the same command again after a crash: it resumes at the first page not done, and never
    copies an event twice (each gets a uid derived from its content). Ends with a check by
    counts; every row that could not be copied is listed, and the exit code is then 1.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from .._errors import AuditError
    from ..tinybird.migrate import migrate_urls
    from ._app import err

    progress = Progress(
        TextColumn("migrate"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("rows"),
        TimeElapsedColumn(),
        console=err,
        disable=not err.is_terminal,
    )
    try:
        with progress:
            task = progress.add_task("migrate", total=None)

            def on_page(done: int, total: int) -> None:
                progress.update(task, completed=done, total=total)

            report, path = migrate_urls(
                source,
                destination,
                workspace=workspace,
                state_path=state,
                page_rows=page_rows,
                progress=on_page,
            )
    except ValueError as exc:
        fail(str(exc))
    except AuditError as exc:
        fail(f"{exc} (the migration resumes where it stopped when run again)", code=1)
    for line in report.summary():
        sys.stdout.write(line + "\n")
    sys.stdout.write(f"state: {path}\n")
    if not report.ok:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.add_typer(tinybird_app, name="tinybird")
