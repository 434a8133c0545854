"""Projection snapshots after an erasure: a snapshot is a cache folded from events while the
subject's key existed, so it may hold their plaintext. Erasing a subject deletes the
workspace's snapshots before the erasure is recorded; the next fold reads ``[erased]``."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import psycopg
from pydantic import Field

from auditbird import AsyncAuditLog, AuditLog, Event, Projection, on
from auditbird.erasure import ERASED, erase_subject, erase_subject_async

from .erasure_support import invited_registry as _registry

ADA, ADA_MAIL = "Ada Lovelace", "ada.lovelace@example.org"


class Invites(Projection):
    names: list[str] = Field(default_factory=list)
    emails: list[str] = Field(default_factory=list)

    @on("user.invited")
    def _invited(self, event: Event) -> None:
        self.names.append(event.actor.name or "")
        self.emails.append(event.metadata.email)


def _invite(actor_id: str, name: str, email: str) -> dict[str, object]:
    return {
        "id": "org:1",
        "action": "user.invited",
        "actor": {"id": actor_id, "name": name},
        "metadata": {"email": email},
    }


def _raw(path: Path) -> bytes:
    """Every byte of the database and its WAL/journal."""
    return b"".join(
        Path(str(path) + s).read_bytes() for s in ("", "-wal", "-journal") if Path(str(path) + s).exists()
    )


def _snapshot_rows(path: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(path) as conn:
        return list(conn.execute("SELECT workspace, stream FROM auditbird_snapshot ORDER BY 1, 2"))


def test_erase_deletes_the_workspace_snapshots_and_no_plaintext_is_left(tmp_path: Path) -> None:
    db = tmp_path / "audit.db"
    reg = _registry()
    with AuditLog(f"sqlite:///{db}", workspace="acme", registry=reg) as log:
        other = AuditLog(log.store, workspace="other", registry=reg)
        log.publish_audit_log(_invite("42", ADA, ADA_MAIL))
        log.publish_audit_log(_invite("43", "Bob Babbage", "bob@example.org"))
        other.publish_audit_log(_invite("42", "Other Ada", "other@example.org"))
        for _ in range(3):  # several saves: replaced versions must not linger either
            assert log.snapshot("org:1", Invites).names == [ADA, "Bob Babbage"]
        other.snapshot("org:1", Invites)
        assert ADA_MAIL.encode() in _raw(db)  # the snapshot holds the plaintext: what is at stake

        erase_subject(log, "user:42")

        assert _snapshot_rows(db) == [("other", "org:1")]  # only the erased workspace's
        raw = _raw(db)
        assert ADA.encode() not in raw and ADA_MAIL.encode() not in raw
        state = log.project("org:1", Invites)
        assert (state.names, state.emails) == ([ERASED, "Bob Babbage"], [ERASED, "bob@example.org"])
        assert other.project("org:1", Invites).names == ["Other Ada"]  # another workspace's subject


def test_erase_async_deletes_the_snapshots_too(tmp_path: Path) -> None:
    db = tmp_path / "audit.db"

    async def main() -> list[str]:
        async with AsyncAuditLog(f"sqlite:///{db}", workspace="acme", registry=_registry()) as log:
            await log.publish_audit_log(_invite("42", ADA, ADA_MAIL))
            await log.snapshot("org:1", Invites)
            assert _snapshot_rows(db) == [("acme", "org:1")]
            await erase_subject_async(log, "user:42")
            assert _snapshot_rows(db) == []
            return (await log.project("org:1", Invites)).names

    assert asyncio.run(main()) == [ERASED]
    assert ADA.encode() not in _raw(db)


def test_erase_on_postgres_deletes_the_workspace_snapshots(postgres_url: str) -> None:
    reg = _registry()
    with AuditLog(postgres_url, workspace="acme", registry=reg) as log:
        other = AuditLog(log.store, workspace="other", registry=reg)
        log.publish_audit_log(_invite("42", ADA, ADA_MAIL))
        other.publish_audit_log(_invite("7", "Someone", "s@example.org"))
        log.snapshot("org:1", Invites)
        other.snapshot("org:1", Invites)
        erase_subject(log, "user:42")
        with psycopg.connect(postgres_url) as conn:
            rows = conn.execute("SELECT workspace, state FROM auditbird_snapshot").fetchall()
        assert [r[0] for r in rows] == ["other"] and ADA not in str(rows)
        assert log.project("org:1", Invites).emails == [ERASED]
