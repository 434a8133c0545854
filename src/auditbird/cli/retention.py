"""``auditbird retention``: keep each workspace's events for a period, then remove them
(their leaf hashes stay, so provable history still verifies; see docs/provable-history.md)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from .._errors import AuditError
from ._app import fail, settings

__all__ = ["register"]

retention_app = typer.Typer(
    name="retention",
    help="Retention: a per-workspace maximum age; expired events are removed, their tree leaves kept.",
    no_args_is_help=True,
)

_Json = Annotated[bool, typer.Option("--json", help="Print JSON instead of a sentence")]


@retention_app.command("set")
def set_command(
    period: Annotated[str, typer.Argument(help="How long to keep events: 365d, 12w, 48h, 7y; or 'off'")],
) -> None:
    """Set the workspace's retention period (recorded as a retention.set event).

    Example: auditbird --store sqlite:///audit.db -w acme retention set 365d
    """
    from ..retention import RetentionError, set_policy

    log = settings.open_log()
    try:
        policy = set_policy(log, None if period.strip().lower() == "off" else period)
    except (RetentionError, AuditError) as exc:
        fail(exc)
    finally:
        log.close()
    if policy is None:
        sys.stdout.write(f"workspace {log.workspace!r}: events are kept forever\n")
    else:
        sys.stdout.write(f"workspace {log.workspace!r}: events older than {policy.period} will be removed\n")


@retention_app.command("show")
def show_command(as_json: _Json = False) -> None:
    """Print every workspace's retention period.

    Example: auditbird --store sqlite:///audit.db retention show
    """
    from ..retention import RetentionError, policies

    log = settings.open_log()
    try:
        found = policies(log)
    except (RetentionError, AuditError) as exc:
        fail(exc)
    finally:
        log.close()
    if as_json:
        sys.stdout.write(json.dumps([{"workspace": p.workspace, "period": p.period} for p in found]) + "\n")
        return
    if not found:
        sys.stdout.write("no retention policy: every event is kept\n")
    for p in found:
        sys.stdout.write(f"{p.workspace!r}\t{p.period}\n")


@retention_app.command("apply")
def apply_command(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Report what would be removed; change nothing")
    ] = False,
    every: Annotated[bool, typer.Option("--all", help="Every workspace that has a policy")] = False,
    as_json: _Json = False,
) -> None:
    """Remove the events older than the workspace's period; report how many, and the oldest and
    newest removed timestamps. The run is recorded as a retention.apply event.

    Example: auditbird --store sqlite:///audit.db -w acme retention apply --dry-run
    """
    from ..retention import RetentionError, apply_all, apply_retention

    log = settings.open_log()
    try:
        reports = apply_all(log, dry_run=dry_run) if every else [apply_retention(log, dry_run=dry_run)]
    except (RetentionError, AuditError) as exc:
        fail(exc)
    finally:
        log.close()
    if as_json:
        sys.stdout.write(json.dumps([r.to_json() for r in reports]) + "\n")
        return
    if not reports:
        sys.stdout.write("no workspace has a retention policy: nothing to do\n")
    for report in reports:
        sys.stdout.write(report.message() + "\n")


@retention_app.command("datafiles")
def datafiles_command(
    dest: Annotated[Path, typer.Argument(help="Folder to write datasources/ and pipes/ into")],
    period: Annotated[str, typer.Argument(help="How long Tinybird keeps events: 365d, 7y, ...")],
) -> None:
    """Write the shipped Tinybird datafiles into DEST with a TTL on audit_log: on Tinybird the
    datasource's TTL applies retention (opt-in: the shipped datafile keeps events forever).

    Example: auditbird retention datafiles tb 365d && cd tb && tb --cloud deploy
    """
    from ..retention import RetentionError
    from ..retention_tinybird import write_datafiles_with_ttl

    if dest.exists() and not dest.is_dir():
        fail(f"{dest}: not a folder")
    try:
        written = write_datafiles_with_ttl(dest, period)
    except RetentionError as exc:
        fail(exc)
    except OSError as exc:
        fail(f"cannot write into {dest}: {exc.strerror or exc}", code=1)
    for path in written:
        sys.stdout.write(f"{path}\n")


def register(app: typer.Typer) -> None:
    app.add_typer(retention_app)
