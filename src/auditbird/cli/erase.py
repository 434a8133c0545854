"""`auditbird erase --subject user:42`: crypto-shred a data subject (docs/erasure.md)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from .._errors import AuditError, AuditValidationError
from ..erasure import erase_subject
from ._app import fail, settings


def erase(
    subject: Annotated[
        str, typer.Option("--subject", help="The data subject, `kind:id` (the actor 42 is user:42)")
    ],
) -> None:
    r"""Destroy a data subject's key in the workspace (-w): its personal fields then read as
    \[erased] everywhere (events, exports, the viewer), while the events and their Merkle tree
    stay as stored, so `auditbird verify` still passes. The erasure is recorded as an
    audit_log.subject_erased event naming the subject. A subject without a key (unknown, or
    erased already): exit 2, nothing changed.

    Example: auditbird --store sqlite:///audit.db -w acme erase --subject user:42
    """
    log = settings.open_log()
    try:
        event = erase_subject(log, subject)
    except (AuditValidationError, AuditError, ValueError) as exc:
        fail(exc)
    finally:
        log.close()
    metadata = event.to_dict()["metadata"]
    sys.stdout.write(
        f"erased {subject} in workspace {event.workspace!r}: {metadata['keys_destroyed']} key(s) destroyed; "
        f"recorded as event {event.uid}\n"
    )
    _forget_idempotency(event.workspace)


def _forget_idempotency(workspace: str) -> None:
    """Delete the workspace's idempotency records in the service's keys of this store, if it
    has any (they hold answers as published, personal fields in the clear: docs/erasure.md)."""
    try:
        from ..service.keys import KeyStore, is_postgres_url, keys_location_for
    except ModuleNotFoundError:  # no service extra: no service ever kept records here
        return
    location = keys_location_for(settings.store)
    if not is_postgres_url(location) and not Path(location).exists():
        return
    try:
        from .service import shown as keys_shown

        with KeyStore(location) as keys:
            keys.forget_idempotency(workspace)
    except Exception as exc:  # the erasure stands; say what is left to do
        sys.stderr.write(
            f"warning: the service's idempotency records of workspace {workspace!r} were not deleted "
            f"({type(exc).__name__}: {exc}); they hold answers from before the erasure for up to 24 h: "
            f"delete that workspace's rows of the idempotency table in {keys_shown(location)}\n"
        )


def register(app: typer.Typer) -> None:
    app.command("erase")(erase)
