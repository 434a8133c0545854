"""An async publish never makes or reads a subject key on the event loop: a new subject's key
is an INSERT and fsyncs of the key file (15-100 ms here), which would stall every other request
of the loop. Seen with the key file connection's own statement trace: which thread ran each."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from auditbird import AsyncAuditLog
from auditbird.erasure.keys import SubjectKeys


def _event(i: int) -> dict[str, object]:
    return {"id": f"m:{i}", "action": "monitor.down", "actor": {"id": str(i), "name": f"Person {i}"}}


def test_subject_keys_are_made_off_the_event_loop(tmp_path: Path) -> None:
    statements: list[tuple[int, str]] = []

    async def main() -> int:
        async with AsyncAuditLog(f"sqlite:///{tmp_path / 'a.db'}", workspace="acme") as log:
            await log.publish_audit_log(_event(0))  # opens the key file
            keys = log._subject_keys
            assert isinstance(keys, SubjectKeys) and keys._conn is not None
            keys._conn.set_trace_callback(lambda sql: statements.append((threading.get_ident(), sql)))
            await log.publish_audit_log(_event(1))  # a new subject: its key is made
            await log.publish_many([_event(2), _event(3)])
            again = await log.publish_audit_log(_event(1))  # known: answered from memory
            assert again.actor.name == "Person 1"
            return threading.get_ident()

    loop_thread = asyncio.run(main())
    inserts = [(t, sql) for t, sql in statements if "INSERT" in sql]
    assert len(inserts) == 3  # one key per new subject ...
    assert all(t != loop_thread for t, _ in statements), statements  # ... none of it on the loop


def test_published_values_still_read_back(tmp_path: Path) -> None:
    async def main() -> list[str | None]:
        async with AsyncAuditLog(f"sqlite:///{tmp_path / 'a.db'}", workspace="acme") as log:
            await log.publish_many([_event(1), _event(2)])
            await log.publish_audit_log(_event(3))
            page = await log.list(limit=10)
            return sorted(e.actor.name or "" for e in page.events)

    assert asyncio.run(main()) == ["Person 1", "Person 2", "Person 3"]
    assert b"Person" not in (tmp_path / "a.db").read_bytes()  # sealed, as before
