"""Erasing a data subject: destroy its key, then record the erasure as an event.

The key goes first: once it is gone the subject's personal fields read as ``[erased]`` in
every copy of the events (the store, its WAL, exports, a Tinybird relay), and the event that
records it names only the subject id, never the erased data. Should recording fail after the
key is gone, the error says so: the data is erased, only the record is missing.

The workspace's projection snapshots (a cache folded while the key existed, so possibly
holding the values in the clear) are deleted before the key is destroyed and again after it,
before the event is recorded: the next fold replays the events and reads ``[erased]``.
"""

from __future__ import annotations

import asyncio
import os
import re
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel

from .._errors import AuditError, AuditValidationError, NotFound, Problem, UnsupportedOperation
from ..event import Event
from ..reserved import system_events
from ..stores.postgres import PostgresStore
from ..stores.sqlite import SQLiteStore
from .keys import SubjectKeyStore, register, register_postgres, subject_keys_path

__all__ = [
    "ERASED_ACTION",
    "SubjectErased",
    "keys_for_store",
    "keys_for_url",
    "keys_for_connection",
    "erase_subject",
    "erase_subject_async",
]

ERASED_ACTION = "audit_log.subject_erased"
_SUBJECT = re.compile(r"[A-Za-z][A-Za-z0-9_-]*:\S.*")


class SubjectErased(BaseModel):
    """The metadata of ``audit_log.subject_erased``: whose key was destroyed, never their data."""

    subject: str
    keys_destroyed: int


def keys_for_store(store: Any) -> SubjectKeyStore | None:
    """The subject keys of a store (through the service's wrappers): ``<file>.subjects.db``
    beside a SQLite file, tables beside the events' on PostgreSQL; None for every other store
    (docs/erasure.md: where personal fields stay in the clear)."""
    store = _blocking(store)
    if isinstance(store, PostgresStore):
        return register_postgres(store.url)
    if isinstance(store, SQLiteStore):
        path = store.path
        if path == ":memory:" or path.startswith("file:") or not path:
            return None
        return register(subject_keys_path(os.path.abspath(path)))
    return None


def keys_for_url(store_url: str) -> SubjectKeyStore | None:
    """The subject keys of the store ``store_url`` names, without opening the store itself (a
    dead-letter replay needs only the keys to open sealed values): the same key store as
    :func:`keys_for_store` of that store; None where that would be None."""
    scheme = store_url.split(":", 1)[0].lower() if ":" in store_url else ""
    if scheme in ("postgresql", "postgres"):
        return register_postgres(store_url)
    if scheme != "sqlite":
        return None
    parts = urlsplit(store_url)  # as SQLiteStore.from_url reads it
    path = parts.path[1:] if parts.path.startswith("/") else parts.path
    if parts.netloc or not path or path == ":memory:" or path.startswith("file:"):
        return None
    return register(subject_keys_path(os.path.abspath(path)))


def _blocking(store: Any) -> Any:
    """The blocking store under the async wrappers (ThreadedStore, the service's group-commit
    writer), which keep the store they run in ``.sync``."""
    for _ in range(6):
        try:
            inner = vars(store).get("sync")
        except TypeError:  # no instance __dict__: not a wrapper
            return store
        if inner is None:
            return store
        store = inner
    return store


def _forget_snapshots(log: Any, ws: str, subject: str, *, erased: bool) -> None:
    """Delete the workspace's projection snapshots: a cache folded while the key existed, so
    they may hold the subject's values in the clear (all of the workspace's: which of them
    hold the subject cannot be told from the JSON). Folding again reads ``[erased]``."""
    store = _blocking(log.store)
    # The stores that keep subject keys (keys_for_store) are the ones an erasure reaches here.
    if not isinstance(store, SQLiteStore | PostgresStore):
        return
    try:
        store.delete_snapshots(ws)
    except Exception as exc:
        if not erased:
            raise AuditError(
                f"erasing {subject}: deleting the projection snapshots failed: {exc}; "
                "nothing was erased, retry"
            ) from exc
        raise AuditError(
            f"{subject}'s key was destroyed (its events read as erased), but deleting the projection "
            f"snapshots of workspace {ws!r} failed: {exc}; they may still hold its values: delete them "
            f"(the store's delete_snapshots({ws!r})) and publish an {ERASED_ACTION} event for it by hand "
            "inside `with auditbird.reserved.system_events():`"
        ) from exc


def keys_for_connection(conn: Any) -> SubjectKeyStore | None:
    """The subject keys beside the file a :class:`sqlite3.Connection` writes (``emit``)."""
    for _seq, name, file in conn.execute("PRAGMA database_list").fetchall():
        if name == "main" and file:
            return register(subject_keys_path(file))
    return None


def _check(log: Any, subject: str, workspace: str | None) -> tuple[SubjectKeyStore, str]:
    if not isinstance(subject, str) or len(subject) > 256 or not _SUBJECT.fullmatch(subject):
        raise AuditValidationError(
            [Problem("subject", "a data subject id in `kind:id` form, e.g. user:42 (at most 256 characters)")]
        )
    keys: SubjectKeyStore | None = getattr(log, "_subject_keys", None)
    if keys is None:
        raise UnsupportedOperation(
            "this log keeps no subject keys (a SQLite file store keeps them in <store>.subjects.db, "
            "PostgreSQL in auditbird_subject_keys): "
            "there is nothing to erase here"
        )
    ws = log.workspace if workspace is None else workspace
    if not keys.has_subject(ws, subject):
        raise NotFound(
            f"no personal data of {subject!r} in workspace {ws!r}: nothing erased "
            "(check the subject id and the workspace; an erased subject has no key left)"
        )
    if ERASED_ACTION not in log.registry:
        log.registry.register(ERASED_ACTION, SubjectErased)
    return keys, ws


def _event(subject: str, ws: str, destroyed: int, actor: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "id": subject,
        "action": ERASED_ACTION,
        "workspace": ws,
        "actor": actor or {"id": "", "name": "auditbird erase", "type": "system"},
        "metadata": {"subject": subject, "keys_destroyed": destroyed},
    }


def _recording_failed(subject: str, exc: Exception) -> AuditError:
    return AuditError(
        f"{subject}'s key was destroyed (its data is erased), but recording the erasure failed: {exc}; "
        f"publish an {ERASED_ACTION} event for {subject} by hand, inside "
        "`with auditbird.reserved.system_events():` (the action is reserved to auditbird)"
    )


def erase_subject(
    log: Any, subject: str, *, workspace: str | None = None, actor: dict[str, Any] | None = None
) -> Event:
    """Destroy ``subject``'s key in the log's workspace and record it; the erasure event.

    Raises :class:`~auditbird.NotFound` (nothing changed) when the subject has no key there."""
    keys, ws = _check(log, subject, workspace)
    _forget_snapshots(log, ws, subject, erased=False)
    destroyed = keys.destroy(ws, subject)
    if destroyed == 0:  # erased meanwhile by another process
        raise NotFound(f"no personal data of {subject!r} in workspace {ws!r}: nothing erased")
    # Again once the key is gone: a fold that read the plaintext meanwhile may have saved one.
    _forget_snapshots(log, ws, subject, erased=True)
    try:
        with system_events():  # audit_log.* is reserved to auditbird's own records
            return log.publish_audit_log(_event(subject, ws, destroyed, actor))
    except Exception as exc:
        raise _recording_failed(subject, exc) from exc


async def erase_subject_async(
    log: Any, subject: str, *, workspace: str | None = None, actor: dict[str, Any] | None = None
) -> Event:
    """:func:`erase_subject` for an :class:`~auditbird.AsyncAuditLog` (key file work in a thread)."""
    keys, ws = await asyncio.to_thread(_check, log, subject, workspace)
    await asyncio.to_thread(_forget_snapshots, log, ws, subject, erased=False)
    destroyed = await asyncio.to_thread(keys.destroy, ws, subject)
    if destroyed == 0:
        raise NotFound(f"no personal data of {subject!r} in workspace {ws!r}: nothing erased")
    await asyncio.to_thread(_forget_snapshots, log, ws, subject, erased=True)
    try:
        with system_events():
            return await log.publish_audit_log(_event(subject, ws, destroyed, actor))
    except Exception as exc:
        raise _recording_failed(subject, exc) from exc
