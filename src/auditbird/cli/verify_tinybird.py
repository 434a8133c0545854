"""``auditbird verify --store tinybird://...``: the Tinybird side of `verify` (see
:mod:`auditbird.provable.tinybird_verify`); called by ``cli/provable.py``'s verify."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

import typer

from .._errors import AuditError
from ._app import fail

__all__ = ["is_tinybird_url", "verify_tinybird_command"]


def is_tinybird_url(url: str) -> bool:
    return url.split(":", 1)[0].lower().startswith("tinybird")


def _read(path: Path, what: str) -> str:
    try:
        return path.read_text(encoding="utf-8")[: 1024 * 1024]
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"cannot read the {what} {path}: {exc}")


def _date_ms(text: str) -> int:
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        fail(f"--expired-before {text!r} is not an ISO date: pass e.g. 2025-01-31 or 2025-01-31T12:00:00Z")
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp() * 1000)


def verify_tinybird_command(
    url: str,
    workspace: str,
    checkpoint_file: Path | None,
    public_key: Path | None,
    expired_before: str | None = None,
) -> None:
    from ..provable.checkpoint import CheckpointError
    from ..provable.tinybird_verify import verify_tinybird
    from ..stores.tinybird import TinybirdStore

    if public_key is None:
        fail(
            "verify on Tinybird needs --public-key FILE (the relay host's `auditbird checkpoint "
            "--public-key`): nothing stored in the Tinybird workspace is trusted"
        )
    key = _read(public_key, "public key")
    checkpoint = _read(checkpoint_file, "checkpoint") if checkpoint_file is not None else None
    before = None if expired_before is None else _date_ms(expired_before)
    try:
        with TinybirdStore.from_url(url) as store:
            report = verify_tinybird(
                store, key, workspace=workspace, checkpoint_text=checkpoint, expired_before=before
            )
    except (CheckpointError, ValueError) as exc:
        fail(exc)
    except AuditError as exc:
        fail(exc, code=1)
    if not report.ok:
        sys.stdout.write(f"FAILED {report.message()}\n")
        raise typer.Exit(1)
    note = ""
    if report.expired[0]:
        note = (
            f" (gone, and dated before {expired_before} by the published tree: that date is not signed, "
            "so whoever can write to the Tinybird workspace could have back-dated and deleted them)"
        )
    sys.stdout.write(report.message() + note + "\n")
