"""`auditbird checkpoint` and `auditbird verify`: signed checkpoints of a log's Merkle tree and
the check that its events still match them (see docs/provable-history.md)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from .._errors import AuditError
from ..log import AuditLog
from ..provable import ProofError, consistency
from ..provable.checkpoint import (
    Checkpoint,
    CheckpointError,
    open_checkpoint,
    sign_checkpoint,
    signer_for,
    workspace_of,
)
from ..provable.verify import ExportError, verify_export, verify_store, write_export
from ..stores.merkle import verify_consistency
from ._app import fail, settings
from .verify_tinybird import is_tinybird_url, verify_tinybird_command

_Store = Annotated[str | None, typer.Option("--store", help="Store URL (default: the global --store)")]
_Workspace = Annotated[
    str | None, typer.Option("--workspace", "-w", help="Workspace (default: the global -w)")
]


def _open(store: str | None, workspace: str | None) -> AuditLog:
    if store is not None:
        settings.store = store
    if workspace is not None:
        settings.workspace = workspace
    return settings.open_log()


def _read(path: Path, what: str) -> str:
    try:
        with path.open(encoding="utf-8") as f:
            return f.read(1024 * 1024)
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"cannot read the {what} {path}: {exc}")


def checkpoint(
    store: _Store = None,
    workspace: _Workspace = None,
    public_key: Annotated[bool, typer.Option("--public-key", help="Print the verifier key instead")] = False,
    export: Annotated[
        Path | None, typer.Option("--export", help="Also write the checkpoint's events here, as NDJSON")
    ] = None,
) -> None:
    """Print a signed checkpoint (C2SP tlog-checkpoint, Ed25519 signed note) of the workspace's
    Merkle tree. The key is made on first use beside the store (<store>.checkpoint.key, 0600).
    With --export, the events the checkpoint covers are written to a file for offline checks.

    Example: auditbird --store sqlite:///audit.db checkpoint > cp.txt
    """
    log = _open(store, workspace)
    try:
        if public_key:
            sys.stdout.write(signer_for(log).verifier_key() + "\n")
            return
        text = sign_checkpoint(log)
        if export is not None:
            with export.open("wb") as f:
                write_export(log, int(text.split("\n")[1]), f)
    except (CheckpointError, ProofError, AuditError, OSError) as exc:
        fail(exc)
    sys.stdout.write(text)


def verify(
    store: _Store = None,
    workspace: _Workspace = None,
    checkpoint_file: Annotated[
        Path | None, typer.Option("--checkpoint", help="A signed checkpoint to check against")
    ] = None,
    export: Annotated[Path | None, typer.Option("--export", help="Verify this NDJSON export offline")] = None,
    public_key: Annotated[
        Path | None, typer.Option("--public-key", help="The verifier key file (default: the store's own key)")
    ] = None,
    expired_before: Annotated[
        str | None,
        typer.Option(
            "--expired-before",
            help="Tinybird only: count events gone that the published tree dates before this "
            "ISO date (UTC) as removed by the datasource TTL; that date is not signed",
        ),
    ] = None,
) -> None:
    """Check that the events still hash to the Merkle tree and to a signed checkpoint. Prints
    "verified N events up to checkpoint X" (exit 0), or the first event where the data stops
    matching and what is wrong there: changed, missing, inserted, reordered (exit 1). A bad
    signature, an export that is not NDJSON or of the wrong size: exit 2.

    Example: auditbird verify --export events.ndjson --checkpoint cp.txt --public-key key.txt
    """
    if export is not None and (checkpoint_file is None or public_key is None):
        fail(
            "verify --export needs --checkpoint FILE and --public-key FILE: offline, nothing else is trusted"
        )
    if export is None and is_tinybird_url(store or settings.store):  # the tree published beside it
        return verify_tinybird_command(
            store or settings.store,
            workspace or settings.workspace,
            checkpoint_file,
            public_key,
            expired_before,
        )
    if expired_before is not None:
        fail(
            "--expired-before is for a Tinybird store (its TTL leaves no record); a SQLite log "
            "records each retention run, and verify checks it: drop the option"
        )
    log = None if export is not None else _open(store, workspace)
    cp: Checkpoint | None = None
    try:
        if checkpoint_file is not None:
            key = _read(public_key, "public key") if public_key else signer_for(log).verifier_key()
            cp = open_checkpoint(_read(checkpoint_file, "checkpoint"), key)
            if log is not None and workspace_of(cp.origin) != log.workspace:
                fail(
                    f"the checkpoint is for workspace {workspace_of(cp.origin)!r} (origin {cp.origin!r}), "
                    f"not {log.workspace!r}: pass --workspace {workspace_of(cp.origin)}"
                )
        if export is not None:
            assert cp is not None
            try:
                with export.open("rb") as lines:
                    report = verify_export(lines, cp)
            except OSError as exc:
                fail(f"cannot read the export {export}: {exc}")
        else:
            report = verify_store(log, cp)
    except (CheckpointError, ExportError, ProofError) as exc:
        fail(exc)
    if not report.ok:
        sys.stdout.write(f"FAILED {report.message()}\n")
        raise typer.Exit(1)
    extends = ""
    if log is not None and cp is not None and cp.size:
        try:
            proof = consistency(log, cp.size)
            if proof.new > cp.size:
                # Against the signed root, not the stored one: the tree now extends what was signed.
                verify_consistency(cp.size, proof.new, cp.root, proof.new_root, proof.hashes)
                extends = f"; the current tree ({proof.new} events) extends it (consistency proof verified)"
        except ProofError as exc:
            sys.stdout.write(f"FAILED the current tree does not extend the checkpoint: {exc}\n")
            raise typer.Exit(1) from exc
    sys.stdout.write(report.message() + extends + "\n")


def register(app: typer.Typer) -> None:
    app.command("checkpoint")(checkpoint)
    app.command("verify")(verify)
