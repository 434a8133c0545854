"""The Python service client takes its workspace from its key: no `workspace=` to repeat."""

from __future__ import annotations

from pathlib import Path

import pytest

from auditbird import AsyncAuditLog, AuditError, AuditLog

from .live_server import serving


def _key(tmp_path: Path, workspace: str) -> str:
    from auditbird.service import KeyStore

    keys = KeyStore(tmp_path / "audit.keys.db")
    try:
        return keys.create(workspace=workspace, scope="admin").secret
    finally:
        keys.close()


def test_a_client_without_workspace_reads_and_writes_the_keys_workspace(tmp_path: Path) -> None:
    acme, other = _key(tmp_path, "acme"), _key(tmp_path, "other")
    with serving("--store", "sqlite:///audit.db", cwd=tmp_path) as base:
        with AuditLog(base, api_key=acme) as log:
            log.publish_audit_log({"id": "monitor:1", "action": "monitor.down"})
            log.publish_many([{"id": "monitor:1", "action": "monitor.up"}])
            events = log.get_audit_log(event_id="monitor:1")
            assert [e.action for e in events] == ["monitor.up", "monitor.down"]
            assert {e.workspace for e in events} == {"acme"}
        with AuditLog(base, api_key=other) as log:
            assert log.get_audit_log(event_id="monitor:1") == []
        with AuditLog(base, api_key=acme, workspace="other") as log, pytest.raises(AuditError):
            log.get_audit_log(event_id="monitor:1")


async def test_the_async_client_too(tmp_path: Path) -> None:
    acme = _key(tmp_path, "acme")
    with serving("--store", "sqlite:///audit.db", cwd=tmp_path) as base:
        log = AsyncAuditLog(base, api_key=acme)
        try:
            await log.publish_audit_log({"id": "monitor:2", "action": "monitor.down"})
            events = await log.get_audit_log(event_id="monitor:2")
        finally:
            await log.close()
    assert [(e.action, e.workspace) for e in events] == [("monitor.down", "acme")]
