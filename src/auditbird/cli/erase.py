"""`auditbird erase --subject user:42`: crypto-shred a data subject (docs/erasure.md)."""

from __future__ import annotations

import sys
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


def register(app: typer.Typer) -> None:
    app.command("erase")(erase)
