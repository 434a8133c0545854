"""`auditbird check`: look for damage in a SQLite log (see docs/storage-integrity.md)."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from ..stores.sqlite_check import check_url
from ._app import fail, settings


def check(
    quick: Annotated[
        bool, typer.Option("--quick", help="SQLite's quick_check (no index cross-check): ~10x faster")
    ] = False,
) -> None:
    """Check a SQLite log for damage, without writing to it: SQLite's integrity_check, the WAL's
    checksums, and auditbird's invariants (positions gap-free, uids unique per workspace, JSON
    columns that parse). Exit 0 when intact, 1 when damaged. Run it while no process has the log
    open (or on a backup copy): the WAL check reads a WAL nobody is rewriting.

    Example: auditbird --store sqlite:///audit.db check
    """
    try:
        report = check_url(settings.store, quick=quick)
    except ValueError as exc:
        fail(exc)
    if report.ok:
        sys.stdout.write(f"ok: {report.path}: {report.events} events; {', '.join(report.checks)}\n")
        return
    sys.stdout.write(f"damaged: {report.path}\n" + "".join(f"  - {p}\n" for p in report.problems))
    sys.stdout.write(
        "Keep a copy of the file (and its -wal) as it is, then restore the log from a backup; "
        "see docs/storage-integrity.md.\n"
    )
    raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("check")(check)
